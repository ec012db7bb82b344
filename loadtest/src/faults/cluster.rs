//! A real multi-process cluster on loopback for fault injection: every storage node, gateway
//! and replicator is its own `aerolith` process (so it can be SIGKILLed and restarted on the
//! same ports), and each replicator link runs through a UDP fault proxy in this process (so
//! it can be cut).

use std::fs::File;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::proxy::UdpProxy;
use aerolith_common::shard::DEFAULT_SHARDS;
use aerolith_common::topology::{ClusterConfig, DcConfig, NodeConfig, TlsFiles};

/// How long a process may take to print its ready line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The kinds of process a cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A storage node.
    Node,
    /// A gateway.
    Gateway,
    /// A replicator.
    Replicator,
}

/// One process of the cluster: how to start it, and the running child if any.
pub struct Proc {
    /// Its name (`dc1-n1`, `dc1-gateway`, `dc1-replicator`), also its log file's.
    pub name: String,
    /// What it is.
    pub role: Role,
    /// Index of its DC.
    pub dc: usize,
    args: Vec<String>,
    /// Extra arguments for the next start only (a clock offset).
    extra: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
    /// Its data directory (storage nodes and replicators).
    data: Option<PathBuf>,
}

impl Proc {
    /// Whether it is running (started and not killed).
    pub fn running(&self) -> bool {
        self.child.is_some()
    }
}

/// A running cluster of processes.
pub struct ProcCluster {
    aerolith: PathBuf,
    /// Every process, nodes first, then gateways, then replicators.
    pub procs: Vec<Proc>,
    /// DC ids in order.
    pub dcs: Vec<String>,
    /// Each DC's gateway HTTP base URL.
    pub http: Vec<String>,
    /// Each DC's replicator admin base URL.
    pub admin: Vec<String>,
    /// The replicator links through fault proxies: (from DC index, to DC index, proxy).
    pub links: Vec<(usize, usize, UdpProxy)>,
    /// The cluster.toml every process runs with.
    pub config: ClusterConfig,
}

/// Ports the processes listen on come from below Linux's ephemeral range (32768 and up):
/// a port picked there and released could be taken by one of this process's own outgoing
/// connections before the process that is to listen on it binds it.
const PORTS: std::ops::Range<u16> = 20_000..32_000;

/// Ports handed out by this process: a random pick must not repeat one that a process
/// of a cluster holds, or holds no longer but will bind again at a restart.
static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

/// A port of [`PORTS`] that `bind` could take just now and that was never handed out.
fn free_port<T>(bind: impl Fn(SocketAddr) -> std::io::Result<T>) -> anyhow::Result<SocketAddr> {
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
    for _ in 0..1000 {
        let port = rand::random_range(PORTS);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        if !handed.contains(&port) && bind(addr).is_ok() {
            handed.push(port);
            return Ok(addr);
        }
    }
    anyhow::bail!("no free port in {PORTS:?} after 1000 tries")
}

fn free_tcp() -> anyhow::Result<SocketAddr> {
    free_port(TcpListener::bind)
}

fn free_udp() -> anyhow::Result<SocketAddr> {
    free_port(UdpSocket::bind)
}

impl ProcCluster {
    /// Starts `dcs` DCs of `nodes_per_dc` storage nodes, one gateway and one replicator each,
    /// with data and logs under `dir`, running the `aerolith` binary at `aerolith`, and
    /// returns once every gateway is ready (`/readyz`). Must be called inside a tokio
    /// runtime (the link proxies run on it).
    pub async fn start(
        dir: &Path,
        aerolith: &Path,
        dcs: usize,
        nodes_per_dc: usize,
    ) -> anyhow::Result<ProcCluster> {
        Self::start_with(dir, aerolith, dcs, nodes_per_dc, Vec::new()).await
    }

    /// [`ProcCluster::start`] with `node_args` added to every storage node's flags.
    pub async fn start_with(
        dir: &Path,
        aerolith: &Path,
        dcs: usize,
        nodes_per_dc: usize,
        node_args: Vec<String>,
    ) -> anyhow::Result<ProcCluster> {
        let mut cluster = Self::prepare(dir, aerolith, dcs, nodes_per_dc, node_args)?;
        for i in 0..cluster.procs.len() {
            cluster.launch(i).await?;
        }
        cluster.wait_ready(START_TIMEOUT).await?;
        Ok(cluster)
    }

    /// The cluster [`ProcCluster::start_with`] starts, with its configuration, certificates
    /// and link proxies in place but no process launched yet ([`ProcCluster::launch`] each).
    /// Must be called inside a tokio runtime (the link proxies run on it).
    pub fn prepare(
        dir: &Path,
        aerolith: &Path,
        dcs: usize,
        nodes_per_dc: usize,
        node_args: Vec<String>,
    ) -> anyhow::Result<ProcCluster> {
        if !aerolith.is_file() {
            bail!(
                "{} not found: build it first (cargo build -p aerolith-cli) or pass --aerolith",
                aerolith.display()
            );
        }
        std::fs::create_dir_all(dir.join("logs"))?;
        // The certificates come from `aerolith certs`, as a deployment's would.
        let certs = dir.join("certs");
        let status = Command::new(aerolith)
            .args(["certs", "--out"])
            .arg(&certs)
            .stdout(Stdio::null())
            .status()
            .context("running aerolith certs")?;
        if !status.success() {
            bail!("aerolith certs failed ({status})");
        }
        let ids: Vec<String> = (1..=dcs).map(|i| format!("dc{i}")).collect();
        let mut config = ClusterConfig {
            name: "faults".into(),
            shards: DEFAULT_SHARDS,
            tls: Some(TlsFiles::in_dir(&certs)),
            dcs: Vec::new(),
        };
        for id in &ids {
            let mut nodes = Vec::new();
            for n in 1..=nodes_per_dc {
                nodes.push(NodeConfig {
                    id: format!("n{n}"),
                    rpc: free_udp()?.to_string(),
                });
            }
            config.dcs.push(DcConfig {
                id: id.clone(),
                nodes,
            });
        }
        let config_path = dir.join("cluster.toml");
        std::fs::write(&config_path, toml::to_string(&config)?)?;
        let config_arg = config_path.display().to_string();

        let mut procs = Vec::new();
        let mut http = Vec::new();
        let mut admin = Vec::new();
        let mut replicator_rpc = Vec::new();
        for (d, dc) in config.dcs.iter().enumerate() {
            for node in &dc.nodes {
                let name = format!("{}-{}", dc.id, node.id);
                let data = dir.join(&name);
                procs.push(Proc {
                    args: [
                        "node".into(),
                        "--config".into(),
                        config_arg.clone(),
                        "--dc".into(),
                        dc.id.clone(),
                        "--node".into(),
                        node.id.clone(),
                        "--data-dir".into(),
                        data.display().to_string(),
                        "--memory".into(),
                        "small".into(),
                        // Every node of the cluster writes its backups below one directory.
                        "--backup-dir".into(),
                        dir.join("backups").display().to_string(),
                    ]
                    .into_iter()
                    .chain(node_args.iter().cloned())
                    .collect(),
                    log: dir.join("logs").join(format!("{name}.log")),
                    name,
                    role: Role::Node,
                    dc: d,
                    extra: Vec::new(),
                    child: None,
                    data: Some(data),
                });
            }
            let (h, g) = (free_tcp()?, free_tcp()?);
            http.push(format!("http://{h}"));
            let name = format!("{}-gateway", dc.id);
            procs.push(Proc {
                args: vec![
                    "gateway".into(),
                    "--config".into(),
                    config_arg.clone(),
                    "--dc".into(),
                    dc.id.clone(),
                    "--http-listen".into(),
                    h.to_string(),
                    "--grpc-listen".into(),
                    g.to_string(),
                ],
                log: dir.join("logs").join(format!("{name}.log")),
                name,
                role: Role::Gateway,
                dc: d,
                extra: Vec::new(),
                child: None,
                data: None,
            });
            let a = free_tcp()?;
            admin.push(format!("http://{a}"));
            replicator_rpc.push((free_udp()?, a));
        }
        // Every replicator ships to every peer through its own proxy.
        let mut links = Vec::new();
        for from in 0..dcs {
            for (to, (rpc, _)) in replicator_rpc.iter().enumerate() {
                if from != to {
                    let proxy = UdpProxy::start(*rpc, Arc::new(AtomicBool::new(false)))?;
                    links.push((from, to, proxy));
                }
            }
        }
        for (d, dc) in config.dcs.iter().enumerate() {
            let (rpc, a) = replicator_rpc[d];
            let name = format!("{}-replicator", dc.id);
            let mut args = vec![
                "replicator".into(),
                "--config".into(),
                config_arg.clone(),
                "--dc".into(),
                dc.id.clone(),
                "--listen".into(),
                rpc.to_string(),
                "--admin-listen".into(),
                a.to_string(),
                "--data-dir".into(),
                dir.join(&name).display().to_string(),
            ];
            for (from, to, proxy) in &links {
                if *from == d {
                    args.push("--peer".into());
                    args.push(format!("{}={}", ids[*to], proxy.addr()));
                }
            }
            procs.push(Proc {
                args,
                log: dir.join("logs").join(format!("{name}.log")),
                name,
                role: Role::Replicator,
                dc: d,
                extra: Vec::new(),
                child: None,
                data: Some(dir.join(format!("{}-replicator", dc.id))),
            });
        }
        Ok(ProcCluster {
            aerolith: aerolith.to_path_buf(),
            procs,
            dcs: ids,
            http,
            admin,
            links,
            config,
        })
    }

    /// Waits until every gateway answers `/readyz` with 200 (every shard has an owner that
    /// serves it), for at most `within`.
    pub async fn wait_ready(&self, within: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + within;
        for base in &self.http {
            let url = format!("{base}/readyz");
            loop {
                let answer = http.get(&url).timeout(Duration::from_secs(5)).send().await;
                let last = match answer {
                    Ok(r) if r.status() == 200 => break,
                    Ok(r) => format!("{}: {}", r.status(), r.text().await.unwrap_or_default()),
                    Err(e) => e.to_string(),
                };
                if Instant::now() > deadline {
                    bail!("{url} is not ready: {last}");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Starts process `i` and waits for its ready line in its log.
    pub async fn launch(&mut self, i: usize) -> anyhow::Result<()> {
        let p = &mut self.procs[i];
        let log = File::options().create(true).append(true).open(&p.log)?;
        let offset = std::fs::metadata(&p.log)?.len();
        let child = Command::new(&self.aerolith)
            .args(&p.args)
            .args(&p.extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", p.name))?;
        p.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = std::fs::read(&p.log).unwrap_or_default();
            let fresh = String::from_utf8_lossy(text.get(offset as usize..).unwrap_or_default());
            if fresh.contains("listening on") {
                return Ok(());
            }
            if let Some(status) = p.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                p.child = None;
                // The log's directory is often a test's temporary one, gone by the time
                // anyone reads the error: the error carries the log's end.
                let tail: Vec<&str> = fresh.lines().rev().take(5).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!(
                    "{} exited with {status} at start ({}); its log ends: {}",
                    p.name,
                    p.log.display(),
                    tail.join(" | ")
                );
            }
            if Instant::now() > deadline {
                bail!("{} did not start in time; see {}", p.name, p.log.display());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs process `i` (no clean shutdown).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.procs[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes process `i` (SIGSTOP): it holds its connections and answers nothing, like a
    /// machine that hangs; [`ProcCluster::thaw`] lets it go on.
    pub fn freeze(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "-STOP")
    }

    /// Lets a frozen process go on (SIGCONT).
    pub fn thaw(&mut self, i: usize) -> anyhow::Result<()> {
        self.signal(i, "-CONT")
    }

    fn signal(&mut self, i: usize, signal: &str) -> anyhow::Result<()> {
        let Some(child) = self.procs[i].child.as_ref() else {
            bail!("{} is not running", self.procs[i].name);
        };
        let status = Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill {signal} failed ({status})");
        Ok(())
    }

    /// Kills process `i` and starts it again with `extra` arguments (empty: as configured).
    pub async fn restart(&mut self, i: usize, extra: Vec<String>) -> anyhow::Result<()> {
        self.kill(i);
        self.procs[i].extra = extra;
        self.launch(i).await
    }

    /// Sends SIGTERM to process `i` (a clean stop) and waits until it has exited (at most
    /// `within`; then it is SIGKILLed).
    pub async fn terminate(&mut self, i: usize, within: Duration) -> anyhow::Result<()> {
        let Some(mut child) = self.procs[i].child.take() else {
            return Ok(());
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -TERM failed ({status})");
        let deadline = Instant::now() + within;
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "{} did not stop within {within:?} of SIGTERM",
                    self.procs[i].name
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILLs process `i` and removes its data directory (a lost disk); start it again
    /// with [`ProcCluster::launch`].
    pub fn wipe(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill(i);
        if let Some(dir) = &self.procs[i].data
            && dir.exists()
        {
            std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(())
    }

    /// The index (in `procs`) of the storage node of DC `dc` (index) that owns `shard`.
    pub fn owner_of(&self, dc: usize, shard: u16) -> usize {
        let nodes = self.of_role(Role::Node);
        let in_dc: Vec<usize> = nodes
            .into_iter()
            .filter(|i| self.procs[*i].dc == dc)
            .collect();
        in_dc[shard as usize % in_dc.len()]
    }

    /// Cuts (true) or heals (false) every replicator link between DCs `a` and `b`.
    pub fn partition(&self, a: usize, b: usize, cut: bool) {
        for (from, to, proxy) in &self.links {
            if (*from == a && *to == b) || (*from == b && *to == a) {
                proxy.set_down(cut);
            }
        }
    }

    /// Indexes of the processes of `role`.
    pub fn of_role(&self, role: Role) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|i| self.procs[*i].role == role)
            .collect()
    }
}

impl Drop for ProcCluster {
    fn drop(&mut self) {
        for i in 0..self.procs.len() {
            self.kill(i);
        }
    }
}
