//! The YCSB core workloads: their operation mixes, key choosers and records, as in YCSB's
//! `CoreWorkload` (workloads A–F with their standard properties).

pub mod generator;
pub mod keyspace;
pub mod record;

use serde::{Deserialize, Serialize};

/// One operation of a workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// Read one record.
    Read,
    /// Overwrite one record.
    Update,
    /// Insert a new record.
    Insert,
    /// Read up to `max_scan` records from a key on, in key order.
    Scan,
    /// Read one record, then overwrite it (measured as one operation).
    #[serde(rename = "read_modify_write")]
    ReadModifyWrite,
}

impl OpKind {
    /// Every kind, in report order.
    pub const ALL: [OpKind; 5] = [
        OpKind::Read,
        OpKind::Update,
        OpKind::Insert,
        OpKind::Scan,
        OpKind::ReadModifyWrite,
    ];

    /// The name used in tables, reports and plots.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Read => "read",
            OpKind::Update => "update",
            OpKind::Insert => "insert",
            OpKind::Scan => "scan",
            OpKind::ReadModifyWrite => "read_modify_write",
        }
    }
}

/// How keys of existing records are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// Every record equally likely.
    Uniform,
    /// A few records are hot (YCSB's scrambled zipfian, constant 0.99).
    Zipfian,
    /// Recently inserted records are hot (YCSB's skewed latest).
    Latest,
}

/// The YCSB core workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Update heavy: 50% reads, 50% updates, zipfian.
    A,
    /// Read mostly: 95% reads, 5% updates, zipfian.
    B,
    /// Read only: 100% reads, zipfian.
    C,
    /// Read latest: 95% reads, 5% inserts, latest.
    D,
    /// Short ranges: 95% scans (1 to 100 records), 5% inserts, zipfian.
    E,
    /// Read-modify-write: 50% reads, 50% read-modify-writes, zipfian.
    F,
}

impl Workload {
    /// Every core workload, in order.
    pub const ALL: [Workload; 6] = [
        Workload::A,
        Workload::B,
        Workload::C,
        Workload::D,
        Workload::E,
        Workload::F,
    ];

    /// The workload's letter, as reports and file names use it.
    pub fn letter(self) -> &'static str {
        match self {
            Workload::A => "a",
            Workload::B => "b",
            Workload::C => "c",
            Workload::D => "d",
            Workload::E => "e",
            Workload::F => "f",
        }
    }

    /// What the workload does, in a few words.
    pub fn title(self) -> &'static str {
        match self {
            Workload::A => "update heavy",
            Workload::B => "read mostly",
            Workload::C => "read only",
            Workload::D => "read latest",
            Workload::E => "short ranges",
            Workload::F => "read-modify-write",
        }
    }
}

/// A workload's operation mix and key chooser.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Spec {
    /// Which core workload this is.
    pub workload: Workload,
    /// Proportion of each operation kind (they sum to 1).
    pub mix: Vec<(OpKind, f64)>,
    /// How existing keys are chosen.
    pub distribution: Distribution,
    /// Fields per record.
    pub field_count: usize,
    /// Bytes per field value.
    pub field_length: usize,
    /// Longest scan, in records (scan lengths are uniform from 1).
    pub max_scan: usize,
}

impl Spec {
    /// The standard properties of a core workload, with records of `field_count` fields
    /// of `field_length` bytes (YCSB's defaults are 10 and 100).
    pub fn core(workload: Workload, field_count: usize, field_length: usize) -> Spec {
        use OpKind::*;
        let (mix, distribution) = match workload {
            Workload::A => (vec![(Read, 0.5), (Update, 0.5)], Distribution::Zipfian),
            Workload::B => (vec![(Read, 0.95), (Update, 0.05)], Distribution::Zipfian),
            Workload::C => (vec![(Read, 1.0)], Distribution::Zipfian),
            Workload::D => (vec![(Read, 0.95), (Insert, 0.05)], Distribution::Latest),
            Workload::E => (vec![(Scan, 0.95), (Insert, 0.05)], Distribution::Zipfian),
            Workload::F => (
                vec![(Read, 0.5), (ReadModifyWrite, 0.5)],
                Distribution::Zipfian,
            ),
        };
        Spec {
            workload,
            mix,
            distribution,
            field_count: field_count.max(1),
            field_length,
            max_scan: 100,
        }
    }

    /// Picks an operation kind by the mix, from a uniform draw in [0, 1).
    pub fn pick(&self, draw: f64) -> OpKind {
        let mut acc = 0.0;
        for &(kind, p) in &self.mix {
            acc += p;
            if draw < acc {
                return kind;
            }
        }
        self.mix.last().map(|m| m.0).unwrap_or(OpKind::Read)
    }

    /// Whether this workload inserts records while it runs.
    pub fn inserts(&self) -> bool {
        self.mix.iter().any(|m| m.0 == OpKind::Insert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_sum_to_one_and_pick_follows_them() {
        for w in Workload::ALL {
            let spec = Spec::core(w, 10, 100);
            let sum: f64 = spec.mix.iter().map(|m| m.1).sum();
            assert!((sum - 1.0).abs() < 1e-9, "{w:?}");
            assert_eq!(spec.pick(0.0), spec.mix[0].0);
            assert_eq!(spec.pick(0.999_999), spec.mix.last().unwrap().0);
        }
        let b = Spec::core(Workload::B, 10, 100);
        assert_eq!(b.pick(0.94), OpKind::Read);
        assert_eq!(b.pick(0.96), OpKind::Update);
    }
}
