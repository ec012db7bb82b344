//! Shipping checkpoints: per peer DC, how far each local shard's change log has been shipped
//! and acknowledged. Persisted as a small JSON file, replaced atomically (temp file,
//! rename): durably (with fsyncs) when a shard is cut or rewound, without a sync of its own
//! for the positions every shipped round moves (a power loss may then take them back or
//! tear the file; shipping again is harmless).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use aerolith_common::{Error, Result, pb};

/// Acknowledged positions of one peer, by shard.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Shard → (log epoch, sequence) acknowledged by the peer.
    pub shards: BTreeMap<u16, (u64, u64)>,
    /// Shards whose log was trimmed past the peer's acknowledgement: nothing more of them
    /// is shipped until the peer is rebuilt (kept across restarts, so a gap is never
    /// shipped over as if it had not happened).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub cut: BTreeSet<u16>,
}

impl Checkpoint {
    /// The position to read after for `shard` (epoch 0: from the oldest retained change).
    pub fn from(&self, shard: u16) -> pb::ShardPosition {
        let (epoch, seq) = self.shards.get(&shard).copied().unwrap_or((0, 0));
        pb::ShardPosition {
            shard: u32::from(shard),
            epoch,
            seq,
        }
    }

    /// Records positions the peer acknowledged.
    pub fn advance(&mut self, through: &[pb::ShardPosition]) {
        for p in through {
            if let Ok(shard) = u16::try_from(p.shard) {
                self.shards.insert(shard, (p.epoch, p.seq));
            }
        }
    }
}

/// Where one peer's checkpoint lives.
#[derive(Debug, Clone)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    /// The checkpoint file of `peer` under `dir`.
    pub fn new(dir: &Path, peer: &str) -> CheckpointFile {
        CheckpointFile {
            path: dir.join(format!("checkpoint-{peer}.json")),
        }
    }

    /// Loads the checkpoint; none yet is the empty one. A file that does not parse is one a
    /// power loss cut short after a save without a sync ([`CheckpointFile::save_progress`]),
    /// which happens only while no shard is cut: shipping starts again from the oldest
    /// retained change, and the peer's watermarks make that apply nothing twice.
    pub fn load(&self) -> Result<Checkpoint> {
        match std::fs::read(&self.path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(path = %self.path.display(), error = %e, "torn shipping checkpoint; shipping again from the oldest retained changes");
                Checkpoint::default()
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint::default()),
            Err(e) => Err(Error::internal(format!(
                "cannot read {}: {e}",
                self.path.display()
            ))),
        }
    }

    /// Replaces the checkpoint atomically and durably (a shard cut or uncut, a rewind).
    pub fn save(&self, cp: &Checkpoint) -> Result<()> {
        self.write(cp, true)
    }

    /// Records acknowledged positions, on the path of every shipped round: atomically, but
    /// without a sync of its own unless a shard is cut (a cut must survive anything). A
    /// power loss may lose it or leave it torn; shipping again from an older position is
    /// harmless (re-delivery applies nothing twice).
    pub fn save_progress(&self, cp: &Checkpoint) -> Result<()> {
        self.write(cp, !cp.cut.is_empty())
    }

    fn write(&self, cp: &Checkpoint, durable: bool) -> Result<()> {
        write_json(&self.path, cp, durable)
    }
}

/// Replaces the JSON file at `path` with `value` atomically (temp file, rename), and with
/// `durable` durably (the file and its directory synced).
pub(crate) fn write_json(path: &Path, value: &impl Serialize, durable: bool) -> Result<()> {
    let io = |e: std::io::Error| Error::internal(format!("cannot write {}: {e}", path.display()));
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec(value).map_err(Error::internal)?;
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    if durable {
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if durable && let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let f = CheckpointFile::new(dir.path(), "dc2");
        let mut cp = f.load().unwrap();
        assert_eq!(cp.from(3).epoch, 0);
        cp.advance(&[pb::ShardPosition {
            shard: 3,
            epoch: 7,
            seq: 42,
        }]);
        f.save(&cp).unwrap();
        let back = f.load().unwrap();
        assert_eq!(back, cp);
        assert_eq!((back.from(3).epoch, back.from(3).seq), (7, 42));
        // Cut shards survive a restart; files written before they existed still load.
        cp.cut.insert(5);
        f.save(&cp).unwrap();
        assert_eq!(f.load().unwrap().cut, BTreeSet::from([5]));
        std::fs::write(
            dir.path().join("checkpoint-dc2.json"),
            br#"{"shards":{"3":[7,42]}}"#,
        )
        .unwrap();
        assert!(f.load().unwrap().cut.is_empty());
        // Positions saved on the hot path read back the same.
        cp.cut.clear();
        cp.advance(&[pb::ShardPosition {
            shard: 3,
            epoch: 7,
            seq: 43,
        }]);
        f.save_progress(&cp).unwrap();
        assert_eq!(f.load().unwrap(), cp);
        // A torn file (a power loss after such a save) starts again from the oldest changes.
        std::fs::write(dir.path().join("checkpoint-dc2.json"), b"{torn").unwrap();
        assert_eq!(f.load().unwrap(), Checkpoint::default());
    }
}
