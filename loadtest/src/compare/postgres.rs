//! PostgreSQL for the comparison: Debian's server binaries, a scratch cluster made by
//! `initdb` under the comparison's directory, run on loopback on its own port with its
//! durable defaults (fsync on, synchronous_commit on). The package's own service and its
//! `main` cluster (port 5432, /var/lib/postgresql) are never used.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

use super::service::Service;

/// Where Debian installs each PostgreSQL version's server binaries (`<version>/bin`).
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";

/// The system user PostgreSQL runs as when the harness runs as root (Debian's package
/// creates it): the server refuses to run as root.
const SYSTEM_USER: &str = "postgres";

/// The binary directory of the highest PostgreSQL version installed the Debian way
/// (`/usr/lib/postgresql/<version>/bin` holding `postgres`); `/usr/lib/postgresql/15/bin` if
/// none is.
pub fn default_bin_dir() -> PathBuf {
    let mut best: Option<(u32, PathBuf)> = None;
    for (version, entry) in super::numbered_entries(DEBIAN_ROOT) {
        let bin = entry.path().join("bin");
        if bin.join("postgres").exists() && best.as_ref().is_none_or(|b| version > b.0) {
            best = Some((version, bin));
        }
    }
    best.map(|b| b.1)
        .unwrap_or_else(|| Path::new(DEBIAN_ROOT).join("15/bin"))
}

/// Whether this process runs as root (the owner of `/proc/self` is its effective uid).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// The uid and gid of `user`, from `/etc/passwd`.
fn system_user(user: &str) -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    for line in passwd.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() > 3 && fields[0] == user {
            return Ok((fields[2].parse()?, fields[3].parse()?));
        }
    }
    anyhow::bail!(
        "no user {user:?}: PostgreSQL refuses to run as root, and Debian's postgresql package \
         creates that user (scripts/ensure-postgres.sh installs it)"
    )
}

/// `program args`, or under root the same run as the `postgres` user through `setpriv`
/// (which execs, so the process started is the server itself, not a wrapper).
fn command(root: bool, program: PathBuf, args: Vec<String>) -> (PathBuf, Vec<String>) {
    if !root {
        return (program, args);
    }
    let mut wrapped = vec![
        format!("--reuid={SYSTEM_USER}"),
        format!("--regid={SYSTEM_USER}"),
        "--init-groups".into(),
        "--".into(),
        program.display().to_string(),
    ];
    wrapped.extend(args);
    (PathBuf::from("setpriv"), wrapped)
}

/// A running PostgreSQL server.
pub struct Postgres {
    /// The server (the postmaster; its backends are its children).
    pub service: Service,
    /// The connection URL of its `postgres` database.
    pub url: String,
}

/// Makes a cluster in `<dir>/postgres-data` with `<bin_dir>/initdb` and starts
/// `<bin_dir>/postgres` on 127.0.0.1:`port`, returning once it accepts connections.
pub async fn start(bin_dir: &Path, dir: &Path, port: u16) -> anyhow::Result<Postgres> {
    let data = std::path::absolute(dir.join("postgres-data"))?;
    let bin_dir = std::path::absolute(bin_dir)?;
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let root = running_as_root();
    if root {
        let (uid, gid) = system_user(SYSTEM_USER)?;
        std::os::unix::fs::chown(&data, Some(uid), Some(gid))
            .with_context(|| format!("handing {} to {SYSTEM_USER}", data.display()))?;
        // The postgres user must be able to pass through the comparison's directory (a
        // temporary directory may be private to root): search permission only, no listing.
        let mut mode = std::fs::metadata(dir)?.permissions();
        if mode.mode() & 0o001 == 0 {
            mode.set_mode(mode.mode() | 0o001);
            std::fs::set_permissions(dir, mode)?;
        }
    }
    let initdb = bin_dir.join("initdb");
    anyhow::ensure!(
        initdb.exists(),
        "{} not found: install PostgreSQL (scripts/ensure-postgres.sh) or pass --postgres-bin-dir",
        initdb.display()
    );
    // Trust authentication: the server listens on loopback and on a socket inside its own
    // scratch directory only. The C locale makes the primary key's order bytewise, the
    // order etcd and AerolithDB keep keys in. Nothing here touches durability.
    let (program, args) = command(
        root,
        initdb,
        vec![
            "-D".into(),
            data.display().to_string(),
            "-U".into(),
            "postgres".into(),
            "--auth=trust".into(),
            "--encoding=UTF8".into(),
            "--locale=C".into(),
        ],
    );
    // Both work in the data directory: the postgres user may not be allowed into ours.
    Service::spawn_in("postgres-initdb", &program, &args, dir, Some(&data))?
        .wait_exit(Duration::from_secs(300))
        .await
        .context("initdb")?;
    // Its defaults otherwise, durability included: max_connections (100) and
    // shared_buffers (128 MB) are enough for the comparison's workers and records.
    let (program, args) = command(
        root,
        bin_dir.join("postgres"),
        vec![
            "-D".into(),
            data.display().to_string(),
            "-p".into(),
            port.to_string(),
            "-k".into(),
            data.display().to_string(),
            "-c".into(),
            "listen_addresses=127.0.0.1".into(),
        ],
    );
    let mut service =
        Service::spawn_in("postgres", &program, &args, dir, Some(&data))?.stop_with("INT");
    let url = format!("postgresql://postgres@127.0.0.1:{port}/postgres");
    service.wait_ready(|| accepts(&url)).await?;
    Ok(Postgres { service, url })
}

/// Whether the server at `url` accepts a connection within a second (while it starts up it
/// refuses them).
async fn accepts(url: &str) -> bool {
    let connect = tokio_postgres::connect(url, tokio_postgres::NoTls);
    matches!(
        tokio::time::timeout(Duration::from_secs(1), connect).await,
        Ok(Ok(_))
    )
}
