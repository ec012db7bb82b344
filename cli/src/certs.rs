//! `aerolith certs`: the internal RPC's certificates for a cluster started from
//! `cluster.toml` (processes, containers): a new cluster CA, and one certificate and key per
//! role (storage node, gateway, replicator), the role carried in the certificate. Peers
//! check the CA, and each call checks the caller's role; every process of a role presents
//! the same certificate, so adding a node needs no new one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, bail};

use aerolith_common::rpc::tls::IssuedPem;
use aerolith_common::rpc::{DevCa, PeerRole};

/// The files written: the CA, then each role's certificate and key (as
/// `TlsFiles::in_dir` names them).
pub const FILES: [&str; 7] = [
    "ca.pem",
    "storagenode.pem",
    "storagenode.key",
    "gateway.pem",
    "gateway.key",
    "replicator.pem",
    "replicator.key",
];

/// What [`write`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New files were written.
    Created,
    /// All three files were already there and were kept (a re-run of an init step).
    Kept,
}

/// Writes the CA and every role's certificate and key into `dir`, unless all exist already
/// (kept) or only some do (an error: half a set is a mistake). `force` replaces them.
pub fn write(dir: &Path, force: bool) -> anyhow::Result<Outcome> {
    if !must_write(dir, &FILES, force)? {
        return Ok(Outcome::Kept);
    }
    let ca = DevCa::generate()?;
    write_file(&dir.join(FILES[0]), ca.ca_pem().as_bytes(), 0o644)?;
    for role in PeerRole::ALL {
        let issued = ca.issue_pem(&format!("aerolith {role}"), role)?;
        write_pair(dir, role.as_str(), &issued)?;
    }
    Ok(Outcome::Created)
}

/// The public ports' files: a CA of their own (for clients to trust) and a server
/// certificate and key.
pub const PUBLIC_FILES: [&str; 3] = ["public-ca.pem", "public.pem", "public.key"];

/// Writes a CA for the public ports and a server certificate for `names` (the DNS names and
/// addresses clients connect to) into `dir`, with the same keep/refuse/force rule as
/// [`write`]. The public CA is not the cluster's: a public certificate carries no role and
/// is worth nothing inside the cluster.
pub fn write_public(dir: &Path, names: &[String], force: bool) -> anyhow::Result<Outcome> {
    if names.is_empty() {
        bail!("--public-names needs at least one DNS name or address");
    }
    if !must_write(dir, &PUBLIC_FILES, force)? {
        return Ok(Outcome::Kept);
    }
    let ca = DevCa::generate()?;
    write_file(&dir.join(PUBLIC_FILES[0]), ca.ca_pem().as_bytes(), 0o644)?;
    write_pair(dir, "public", &ca.issue_server_pem(names)?)?;
    Ok(Outcome::Created)
}

/// Whether `files` in `dir` are to be written: all present and not forced, no; none (or
/// forced), yes (creating `dir`); some, an error.
fn must_write(dir: &Path, files: &[&str], force: bool) -> anyhow::Result<bool> {
    let present = files.iter().filter(|f| dir.join(f).exists()).count();
    if !force && present == files.len() {
        return Ok(false);
    }
    if !force && present > 0 {
        bail!(
            "{} holds only some of {}: remove them or pass --force to replace them",
            dir.display(),
            files.join(", ")
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(true)
}

/// Writes `<name>.pem` and `<name>.key`; keys are readable by their owner only.
fn write_pair(dir: &Path, name: &str, issued: &IssuedPem) -> anyhow::Result<()> {
    write_file(
        &dir.join(format!("{name}.pem")),
        issued.cert_pem.as_bytes(),
        0o644,
    )?;
    write_file(
        &dir.join(format!("{name}.key")),
        issued.key_pem.as_bytes(),
        0o600,
    )
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
