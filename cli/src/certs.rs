//! `aerolith certs`: the internal RPC's certificates for a cluster started from
//! `cluster.toml` (processes, containers): a new cluster CA, and one certificate and key that
//! every process presents. Peers check the CA and the cluster's server name, not which
//! process it is, so one certificate serves them all.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use aerolith_common::rpc::DevCa;

/// The files written, in the order `cluster.toml`'s `[tls]` names them: `ca`, `cert`, `key`.
pub const FILES: [&str; 3] = ["ca.pem", "node.pem", "node.key"];

/// What [`write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New files were written.
    Created,
    /// All three files were already there and were kept (a re-run of an init step).
    Kept,
}

/// Writes the CA, certificate and key into `dir`, unless all three exist already (kept) or
/// only some do (an error: half a set is a mistake). `force` replaces them.
pub fn write(dir: &Path, force: bool) -> anyhow::Result<Outcome> {
    let paths: Vec<PathBuf> = FILES.iter().map(|f| dir.join(f)).collect();
    let present = paths.iter().filter(|p| p.exists()).count();
    if !force && present == FILES.len() {
        return Ok(Outcome::Kept);
    }
    if !force && present > 0 {
        bail!(
            "{} holds only some of {}: remove them or pass --force to replace them",
            dir.display(),
            FILES.join(", ")
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca = DevCa::generate()?;
    let issued = ca.issue_pem("aerolith")?;
    write_file(&paths[0], ca.ca_pem().as_bytes(), 0o644)?;
    write_file(&paths[1], issued.cert_pem.as_bytes(), 0o644)?;
    // The key is readable by its owner only.
    write_file(&paths[2], issued.key_pem.as_bytes(), 0o600)?;
    Ok(Outcome::Created)
}

/// The file of API tokens [`write_tokens`] writes beside the certificates.
pub const TOKENS_FILE: &str = "tokens";

/// Writes `dir/tokens` (API.md's `ROLE TOKEN` lines: one random `read`, `write` and `admin`
/// token), readable by its owner only, unless it exists; true when it was written.
pub fn write_tokens(dir: &Path, force: bool) -> anyhow::Result<bool> {
    let path = dir.join(TOKENS_FILE);
    if path.exists() && !force {
        return Ok(false);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut text = String::from("# AerolithDB API tokens: ROLE TOKEN (roles read, write, admin)\n");
    for role in ["read", "write", "admin"] {
        text.push_str(&format!("{role} {}\n", random_token()));
    }
    write_file(&path, text.as_bytes(), 0o600)?;
    Ok(true)
}

/// 32 random bytes as hex: a token nobody guesses.
fn random_token() -> String {
    use rand::Rng;
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `bytes` to `path` with `mode`, through a temporary file and a rename, so a reader
/// never sees half a file.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
