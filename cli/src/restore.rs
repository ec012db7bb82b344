//! `aerolith restore`: puts a storage node's backup (`aerolith backup`) in place of its data
//! directory while the node is stopped, and marks it restored, so that at its next start
//! the node takes a new actor epoch and new log epochs and, by default, is re-seeded from a
//! peer DC (the backup's counters are not continuous with what the cluster has seen since).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use aerolith_storagenode::backup::MANIFEST;
use aerolith_storagenode::{RESTORE_MARKER, Restored};

/// What `restore` did.
#[derive(Debug)]
pub struct Outcome {
    /// Where the replaced data directory was moved, if one existed.
    pub moved_aside: Option<PathBuf>,
    /// Files copied from the backup.
    pub files: usize,
}

/// Replaces `data_dir` with the backup in `from` and marks it restored as `mode` says. An
/// existing, non-empty `data_dir` is moved aside (never deleted), and only with `replace`.
pub fn restore(
    from: &Path,
    data_dir: &Path,
    mode: Restored,
    replace: bool,
) -> anyhow::Result<Outcome> {
    if !from.join(MANIFEST).is_file() || !from.join("CURRENT").is_file() {
        bail!(
            "{} is not a storage node backup (no {MANIFEST} or CURRENT file): pass one node's directory of `aerolith backup`",
            from.display()
        );
    }
    let occupied = std::fs::read_dir(data_dir)
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if occupied && !replace {
        bail!(
            "{} holds a store; stop its node and pass --replace to move it aside",
            data_dir.display()
        );
    }
    // Copied beside the data directory first, marker included, then renamed into place:
    // a restore cut short never leaves a partial store where the node would open it.
    let stamp = aerolith_common::time::now_ms();
    let staging = PathBuf::from(format!("{}.restoring-{stamp}", data_dir.display()));
    std::fs::create_dir_all(&staging)
        .with_context(|| format!("cannot create {}", staging.display()))?;
    let mut files = 0;
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let to = staging.join(entry.file_name());
        std::fs::copy(entry.path(), &to).with_context(|| {
            format!("cannot copy {} to {}", entry.path().display(), to.display())
        })?;
        std::fs::File::open(&to).and_then(|f| f.sync_all())?;
        files += 1;
    }
    let marker = staging.join(RESTORE_MARKER);
    std::fs::write(&marker, mode.as_str())
        .with_context(|| format!("cannot write {}", marker.display()))?;
    std::fs::File::open(&marker).and_then(|f| f.sync_all())?;
    std::fs::File::open(&staging).and_then(|d| d.sync_all())?;
    let mut moved_aside = None;
    if data_dir.exists() {
        let aside = PathBuf::from(format!("{}.before-restore-{stamp}", data_dir.display()));
        std::fs::rename(data_dir, &aside)
            .with_context(|| format!("cannot move {} aside", data_dir.display()))?;
        moved_aside = Some(aside);
    }
    std::fs::rename(&staging, data_dir)
        .with_context(|| format!("cannot move {} into place", staging.display()))?;
    if let Some(parent) = data_dir.parent() {
        std::fs::File::open(parent).and_then(|d| d.sync_all())?;
    }
    Ok(Outcome { moved_aside, files })
}
