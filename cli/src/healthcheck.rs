//! `aerolith healthcheck`: a probe for container healthchecks (images have no shell or
//! curl). Gateways and replicators are probed over HTTP (`/readyz`, `/healthz`); a storage
//! node, which has no HTTP port, answers a ping over the internal RPC with the cluster's
//! certificates.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, ensure};

use aerolith_common::rpc::{RpcClient, TlsMaterial};
use aerolith_common::topology::ClusterConfig;
use aerolith_proto::internal::v1 as pb;

/// Succeeds if a GET of `url` answers with a 2xx status within `timeout`.
pub async fn http(url: &str, timeout: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    let resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    ensure!(
        resp.status().is_success(),
        "GET {url} answered {}",
        resp.status()
    );
    Ok(())
}

/// Succeeds if storage node `node` of `dc` (its address from `config`, environment
/// overrides included) answers a ping within `timeout`.
pub async fn node(config: &Path, dc: &str, node: &str, timeout: Duration) -> anyhow::Result<()> {
    let cfg = ClusterConfig::load(config)?;
    let tls = cfg.tls.as_ref().with_context(|| {
        format!(
            "{} has no [tls] section: a node is probed over the internal RPC, which needs the cluster's certificates",
            config.display()
        )
    })?;
    let client = RpcClient::new(&TlsMaterial::from_files(tls)?)?;
    let addr = &cfg
        .dc(dc)?
        .nodes
        .iter()
        .find(|n| n.id == node)
        .with_context(|| format!("{dc} has no node {node} in {}", config.display()))?
        .rpc;
    client
        .call(addr, pb::request::Body::Ping(pb::PingRequest {}), timeout)
        .await
        .with_context(|| format!("ping {dc}/{node} at {addr}"))?;
    Ok(())
}
