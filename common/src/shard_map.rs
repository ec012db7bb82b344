//! Shard maps (issue 25): which storage node of a DC owns each shard, at an epoch.
//!
//! Ownership is data, not a position in `cluster.toml`: the DC's replicator holds the map
//! durably and is its one writer; it hands it to the DC's storage nodes, which keep it and
//! refuse calls for shards they do not own; gateways and peer replicators fetch it from the
//! nodes. A later epoch replaces an earlier one. A DC's first map (epoch [`FIRST_EPOCH`])
//! deals shard *s* to the node `cluster.toml` lists at position *s* mod N, as every release
//! before maps did, so upgrading moves nothing. A map lists its nodes with their addresses,
//! so a node added while the DC serves is reached without a restart; a node `cluster.toml`
//! lists is reached at the address it gives (and its environment override).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{Error, Result};
use crate::pb;
use crate::topology::{ClusterConfig, DcConfig, NodeConfig};

/// The epoch of a DC's first map (the one `cluster.toml` implies).
pub const FIRST_EPOCH: u64 = 1;

/// One storage node as a map lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapNode {
    /// Node id, unique within its DC.
    pub id: String,
    /// Its RPC address as the map was given it (empty in maps from before addresses).
    pub rpc: String,
    /// Being decommissioned: it gets no shards and loses those it has.
    pub leaving: bool,
}

/// One DC's shard map, checked for shape: an owner per shard, each a listed node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardMap {
    /// The DC it maps.
    pub dc: String,
    /// Its epoch: a map replaces any of a lower epoch.
    pub epoch: u64,
    nodes: Vec<MapNode>,
    /// Per shard, the position in `nodes` of its owner.
    owners: Vec<u16>,
    /// Shards being moved (ascending): their owner takes no writes of them.
    moving: Vec<u16>,
}

impl ShardMap {
    /// The first map of `dc`: shard *s* to the node at position *s* mod N.
    pub fn initial(dc: &DcConfig, shards: u16) -> ShardMap {
        let n = dc.nodes.len().max(1);
        ShardMap {
            dc: dc.id.clone(),
            epoch: FIRST_EPOCH,
            nodes: dc
                .nodes
                .iter()
                .map(|n| MapNode {
                    id: n.id.clone(),
                    rpc: n.rpc.clone(),
                    leaving: false,
                })
                .collect(),
            owners: (0..shards).map(|s| (usize::from(s) % n) as u16).collect(),
            moving: Vec::new(),
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
        if !m.addrs.is_empty() && m.addrs.len() != m.nodes.len() {
            return Err(bad("addresses do not match its nodes".into()));
        }
        for (i, id) in m.nodes.iter().enumerate() {
            if id.is_empty() || m.nodes[..i].contains(id) {
                return Err(bad(format!("node {id:?} is empty or listed twice")));
            }
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
        let mut moving = m
            .moving
            .iter()
            .map(|&s| {
                u16::try_from(s)
                    .ok()
                    .filter(|s| *s < shards)
                    .ok_or_else(|| bad(format!("moving shard {s} out of range")))
            })
            .collect::<Result<Vec<u16>>>()?;
        moving.sort_unstable();
        moving.dedup();
        let nodes = m
            .nodes
            .iter()
            .enumerate()
            .map(|(i, id)| MapNode {
                id: id.clone(),
                rpc: m.addrs.get(i).cloned().unwrap_or_default(),
                leaving: m.leaving.contains(id),
            })
            .collect();
        Ok(ShardMap {
            dc: m.dc.clone(),
            epoch: m.epoch,
            nodes,
            owners,
            moving,
        })
    }

    /// The map on the wire.
    pub fn to_pb(&self) -> pb::ShardMap {
        pb::ShardMap {
            dc: self.dc.clone(),
            epoch: self.epoch,
            nodes: self.nodes.iter().map(|n| n.id.clone()).collect(),
            owners: self.owners.iter().map(|o| u32::from(*o)).collect(),
            moving: self.moving.iter().map(|s| u32::from(*s)).collect(),
            addrs: self.nodes.iter().map(|n| n.rpc.clone()).collect(),
            leaving: self
                .nodes
                .iter()
                .filter(|n| n.leaving)
                .map(|n| n.id.clone())
                .collect(),
        }
    }

    /// The number of shards it maps.
    pub fn shards(&self) -> u16 {
        self.owners.len() as u16
    }

    /// Its nodes, in the order it lists them.
    pub fn nodes(&self) -> &[MapNode] {
        &self.nodes
    }

    /// The node with id `id`, if listed.
    pub fn node(&self, id: &str) -> Option<&MapNode> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The id of the node that owns `shard` (empty past the last shard).
    pub fn owner(&self, shard: u16) -> &str {
        self.owners
            .get(usize::from(shard))
            .and_then(|o| self.nodes.get(usize::from(*o)))
            .map_or("", |n| n.id.as_str())
    }

    /// The shards node `id` owns, ascending.
    pub fn shards_of(&self, id: &str) -> Vec<u16> {
        (0..self.shards())
            .filter(|s| self.owner(*s) == id)
            .collect()
    }

    /// Whether `shard` is being moved (its owner takes no writes of it).
    pub fn is_moving(&self, shard: u16) -> bool {
        self.moving.binary_search(&shard).is_ok()
    }

    /// The shards being moved, ascending.
    pub fn moving(&self) -> &[u16] {
        &self.moving
    }

    /// A copy at the next epoch, to change.
    pub fn next(&self) -> ShardMap {
        let mut m = self.clone();
        m.epoch += 1;
        m
    }

    /// Lists node `id` at `rpc` (its address is updated if it is listed already).
    pub fn add_node(&mut self, id: &str, rpc: &str) {
        match self.nodes.iter_mut().find(|n| n.id == id) {
            Some(n) => n.rpc = rpc.to_string(),
            None => self.nodes.push(MapNode {
                id: id.to_string(),
                rpc: rpc.to_string(),
                leaving: false,
            }),
        }
    }

    /// Marks node `id` as leaving (or not); false if it is not listed.
    pub fn set_leaving(&mut self, id: &str, leaving: bool) -> bool {
        match self.nodes.iter_mut().find(|n| n.id == id) {
            Some(n) => {
                n.leaving = leaving;
                true
            }
            None => false,
        }
    }

    /// Stops listing node `id`; refused while it owns a shard.
    pub fn remove_node(&mut self, id: &str) -> Result<()> {
        let Some(pos) = self.nodes.iter().position(|n| n.id == id) else {
            return Ok(());
        };
        if self.owners.iter().any(|o| usize::from(*o) == pos) {
            return Err(Error::invalid(format!(
                "node {id} still owns shards of DC {}",
                self.dc
            )));
        }
        self.nodes.remove(pos);
        for o in &mut self.owners {
            if usize::from(*o) > pos {
                *o -= 1;
            }
        }
        Ok(())
    }

    /// Gives `shard` to node `id` (listed); ends any move of it.
    pub fn set_owner(&mut self, shard: u16, id: &str) -> Result<()> {
        let pos =
            self.nodes.iter().position(|n| n.id == id).ok_or_else(|| {
                Error::invalid(format!("node {id} is not in DC {}'s map", self.dc))
            })?;
        let slot = self
            .owners
            .get_mut(usize::from(shard))
            .ok_or_else(|| Error::invalid(format!("shard {shard} out of range")))?;
        *slot = pos as u16;
        self.set_moving(shard, false);
        Ok(())
    }

    /// Marks `shard` as being moved (its owner takes no writes of it), or not.
    pub fn set_moving(&mut self, shard: u16, moving: bool) {
        match (self.moving.binary_search(&shard), moving) {
            (Err(at), true) => self.moving.insert(at, shard),
            (Ok(at), false) => {
                self.moving.remove(at);
            }
            _ => {}
        }
    }

    /// A copy at the next epoch in which `shard` belongs to node `id` (listed with no
    /// address if new).
    pub fn with_owner(&self, shard: u16, id: &str) -> ShardMap {
        let mut next = self.next();
        if next.node(id).is_none() {
            next.add_node(id, "");
        }
        let _ = next.set_owner(shard, id);
        next
    }

    /// Each listed node's address: `cluster.toml`'s for a node it lists (with the
    /// environment override applied at load), else the map's; an error naming a node
    /// reachable at neither.
    pub fn addresses(&self, dc: &DcConfig) -> Result<Vec<String>> {
        if dc.id != self.dc {
            return Err(Error::invalid(format!(
                "a shard map of DC {} is not one of DC {}",
                self.dc, dc.id
            )));
        }
        self.nodes
            .iter()
            .map(|n| match dc.nodes.iter().find(|c| c.id == n.id) {
                Some(c) => Ok(c.rpc.clone()),
                None if !n.rpc.is_empty() => Ok(n.rpc.clone()),
                None => Err(Error::invalid(format!(
                    "the shard map of DC {} (epoch {}) lists node {}, which has no address: cluster.toml does not list it and the map gives none",
                    self.dc, self.epoch, n.id
                ))),
            })
            .collect()
    }
}

/// One storage node of a DC as a process routes to it: its id, address and shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedNode {
    /// Node id.
    pub id: String,
    /// RPC address.
    pub rpc: String,
    /// The shards it owns, ascending.
    pub shards: Vec<u16>,
}

/// A DC's map with each owner's address resolved, so a router finds it without lookups.
#[derive(Debug)]
struct Resolved {
    map: Arc<ShardMap>,
    /// Per map node, its address (the map's `owners` index it too).
    addrs: Vec<Arc<str>>,
}

impl Resolved {
    fn new(map: ShardMap, dc: &DcConfig) -> Result<Resolved> {
        let addrs = map.addresses(dc)?.into_iter().map(Arc::from).collect();
        Ok(Resolved {
            map: Arc::new(map),
            addrs,
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
    /// Every DC at a guess of its map: the first map `cluster.toml` implies, at epoch 0, so
    /// any map a node holds (epoch 1 or later) replaces it. (The guess is what a DC's nodes
    /// serve until their replicator hands them a map; `cluster.toml` may list nodes added
    /// since the first map, so the guess is never taken for that map itself.)
    pub fn new(cluster: &ClusterConfig) -> ShardMaps {
        let maps = cluster
            .dcs
            .iter()
            .map(|dc| Resolved {
                map: Arc::new(ShardMap {
                    epoch: 0,
                    ..ShardMap::initial(dc, cluster.shards)
                }),
                addrs: dc.nodes.iter().map(|n| Arc::from(n.rpc.as_str())).collect(),
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

    /// The position of DC `dc` in `cluster.toml`.
    pub fn index(&self, dc: &str) -> Result<usize> {
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

    /// The epoch of DC `dc`'s newest known map (0 for a guess, or a DC not in
    /// `cluster.toml`).
    pub fn epoch(&self, dc: &str) -> u64 {
        self.index(dc).map_or(0, |i| self.read()[i].map.epoch)
    }

    /// A number that changes whenever a map is replaced: a caller that saw it unchanged
    /// across a refresh knows the refresh brought nothing new.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The address of DC number `dc_index`'s owner of `shard` in the newest map known.
    pub fn owner_addr(&self, dc_index: usize, shard: u16) -> Arc<str> {
        let maps = self.read();
        maps.get(dc_index)
            .and_then(|r| {
                let pos = r.map.owners.get(usize::from(shard))?;
                r.addrs.get(usize::from(*pos)).cloned()
            })
            .unwrap_or_else(|| Arc::from(""))
    }

    /// Whether DC number `dc_index`'s newest known map lists a node at `addr` (without the
    /// allocations of [`ShardMaps::nodes`]: routers ask it on every write).
    pub fn lists_addr(&self, dc_index: usize, addr: &str) -> bool {
        self.read()
            .get(dc_index)
            .is_some_and(|r| r.addrs.iter().any(|a| &**a == addr))
    }

    /// DC `dc`'s owner of `shard` in the newest map known (an empty id and address for a
    /// DC not in `cluster.toml`).
    pub fn owner_of(&self, dc: &DcConfig, shard: u16) -> NodeConfig {
        let Ok(i) = self.index(&dc.id) else {
            return NodeConfig {
                id: String::new(),
                rpc: String::new(),
            };
        };
        let maps = self.read();
        let r = &maps[i];
        let pos = r
            .map
            .owners
            .get(usize::from(shard))
            .map_or(0, |p| usize::from(*p));
        NodeConfig {
            id: r
                .map
                .nodes
                .get(pos)
                .map(|n| n.id.clone())
                .unwrap_or_default(),
            rpc: r.addrs.get(pos).map(|a| a.to_string()).unwrap_or_default(),
        }
    }

    /// DC `dc`'s nodes in its newest known map, with their addresses and shards.
    pub fn nodes(&self, dc: &str) -> Vec<RoutedNode> {
        let Ok(i) = self.index(dc) else {
            return Vec::new();
        };
        let maps = self.read();
        let r = &maps[i];
        let mut shards = vec![Vec::new(); r.map.nodes.len()];
        for (s, pos) in r.map.owners.iter().enumerate() {
            if let Some(v) = shards.get_mut(usize::from(*pos)) {
                v.push(s as u16);
            }
        }
        r.map
            .nodes
            .iter()
            .zip(&r.addrs)
            .zip(shards)
            .map(|((n, a), shards)| RoutedNode {
                id: n.id.clone(),
                rpc: a.to_string(),
                shards,
            })
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
    fn maps_of_a_wrong_shape_or_naming_unreachable_nodes_are_refused() {
        let c = cluster();
        let m = ShardMap::initial(c.dc("dc1").unwrap(), c.shards).to_pb();
        assert!(ShardMap::from_pb(&m, 32).is_err());
        let mut bad = m.clone();
        bad.owners[3] = 7;
        assert!(ShardMap::from_pb(&bad, 16).is_err());
        let mut zero = m.clone();
        zero.epoch = 0;
        assert!(ShardMap::from_pb(&zero, 16).is_err());
        let mut twice = m.clone();
        twice.nodes[1] = "n1".into();
        assert!(ShardMap::from_pb(&twice, 16).is_err());
        let mut far = m.clone();
        far.moving = vec![16];
        assert!(ShardMap::from_pb(&far, 16).is_err());
        let stranger = ShardMap::from_pb(&m, 16).unwrap().with_owner(5, "n9");
        let e = stranger.addresses(c.dc("dc1").unwrap()).unwrap_err();
        assert!(e.message.contains("n9"), "{e}");
    }

    #[test]
    fn nodes_join_own_move_and_leave() {
        let c = cluster();
        let dc = c.dc("dc1").unwrap();
        let mut m = ShardMap::initial(dc, c.shards).next();
        m.add_node("n4", "a:4");
        m.set_moving(4, true);
        assert!(m.is_moving(4));
        let wire = ShardMap::from_pb(&m.to_pb(), 16).unwrap();
        assert_eq!(wire, m);
        m.set_owner(4, "n4").unwrap();
        assert!(!m.is_moving(4));
        assert_eq!(m.owner(4), "n4");
        assert_eq!(m.addresses(dc).unwrap()[3], "a:4");
        assert!(m.remove_node("n4").is_err());
        m.set_owner(4, "n2").unwrap();
        assert!(m.set_leaving("n3", true));
        let wire = ShardMap::from_pb(&m.to_pb(), 16).unwrap();
        assert!(wire.node("n3").unwrap().leaving);
        m.remove_node("n4").unwrap();
        assert_eq!(m.owner(4), "n2");
        assert_eq!(m.owner(2), "n3");
        assert!(m.set_owner(1, "n4").is_err());
    }

    #[test]
    fn the_book_keeps_only_later_maps_and_resolves_owners() {
        let c = cluster();
        let book = ShardMaps::new(&c);
        assert_eq!(&*book.owner_addr(0, 4), "a:2");
        assert_eq!(book.epoch("dc1"), 0, "a guess until a node tells");
        let first = ShardMap::initial(c.dc("dc1").unwrap(), c.shards);
        assert!(book.learn(&first.to_pb()).unwrap());
        let moved = first.with_owner(4, "n3");
        assert!(book.learn(&moved.to_pb()).unwrap());
        assert_eq!(book.epoch("dc1"), 2);
        assert_eq!(&*book.owner_addr(0, 4), "a:3");
        assert_eq!(book.owner_of(c.dc("dc1").unwrap(), 4).id, "n3");
        // An older or equal epoch changes nothing.
        assert!(!book.learn(&first.to_pb()).unwrap());
        assert!(!book.learn(&moved.to_pb()).unwrap());
        // A node cluster.toml does not list is reached at the map's address.
        let mut grown = moved.next();
        grown.add_node("n4", "a:4");
        grown.set_owner(7, "n4").unwrap();
        assert!(book.learn(&grown.to_pb()).unwrap());
        assert_eq!(&*book.owner_addr(0, 7), "a:4");
        assert!(book.lists_addr(0, "a:4") && !book.lists_addr(1, "a:4"));
        let nodes = book.nodes("dc1");
        assert_eq!(nodes.len(), 4);
        assert_eq!(nodes[3].shards, vec![7]);
        // Another DC's map is its own.
        assert_eq!(book.epoch("dc2"), 0);
        assert_eq!(&*book.owner_addr(1, 3), "b:2");
    }
}
