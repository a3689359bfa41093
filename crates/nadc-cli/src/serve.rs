//! `nadc serve`: run a node until SIGINT/SIGTERM, then shut down cleanly.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use nadc_node::{NodeConfig, RunningNode, TlsFiles};
use nadc_pki::PkiLayout;
use nadc_store::{RocksStore, StoreOptions};
use tracing::{error, info};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML config file (see deploy/node.toml); flags below override it.
    #[arg(long, env = "NADC_CONFIG")]
    config: Option<PathBuf>,
    /// RocksDB data directory.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A directory laid out by `nadc pki init` (ca.crt, nodes/<name>.crt/.key).
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// Which node certificate in --tls-dir to use (default: the only one).
    #[arg(long)]
    node_name: Option<String>,
    /// Retention in days (reads older are refused).
    #[arg(long)]
    retention_days: Option<u32>,
    /// Block cache, MiB (overrides the config's `block_cache_mb`).
    #[arg(long)]
    block_cache_mb: Option<usize>,
    /// Write the bound address to this file once listening (for scripts).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Serve Prometheus metrics here (plain HTTP, `GET /metrics`; e.g.
    /// 127.0.0.1:9464). Overrides the config's `metrics_listen`.
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
}

fn tls_from_dir(dir: &std::path::Path, name: Option<&str>) -> anyhow::Result<TlsFiles> {
    let layout = PkiLayout::new(dir);
    let name = match name {
        Some(n) => n.to_string(),
        None => {
            let nodes_dir = dir.join("nodes");
            let mut names: Vec<String> = std::fs::read_dir(&nodes_dir)
                .with_context(|| format!("list node certificates in {}", nodes_dir.display()))?
                .filter_map(|e| e.ok())
                .filter_map(|e| {
                    let p = e.path();
                    (p.extension()? == "crt")
                        .then(|| p.file_stem()?.to_str().map(str::to_string))?
                })
                .collect();
            names.sort();
            match names.len() {
                1 => names.remove(0),
                0 => bail!("no node certificate in {}", nodes_dir.display()),
                _ => bail!(
                    "several node certificates in {} ({}): pick one with --node-name",
                    nodes_dir.display(),
                    names.join(", ")
                ),
            }
        }
    };
    // The CA's CRL (`nadc pki revoke`), if there is one when the node starts.
    let crl = layout.crl();
    Ok(TlsFiles {
        ca: layout.ca_cert(),
        cert: layout.node_cert(&name),
        key: layout.node_key(&name),
        crl: if crl.exists() { vec![crl] } else { Vec::new() },
    })
}

fn config(a: &ServeArgs) -> anyhow::Result<NodeConfig> {
    let mut cfg = match &a.config {
        Some(path) => NodeConfig::from_file(path)
            .with_context(|| format!("load config {}", path.display()))?,
        None => {
            let data = a
                .data
                .clone()
                .context("give --data DIR (or --config FILE)")?;
            let dir = a
                .tls_dir
                .clone()
                .context("give --tls-dir DIR (or --config FILE)")?;
            NodeConfig::new(data, tls_from_dir(&dir, a.node_name.as_deref())?)
        }
    };
    if a.config.is_some() {
        if let Some(d) = &a.data {
            cfg.data_dir = d.clone();
        }
        if let Some(dir) = &a.tls_dir {
            cfg.tls = tls_from_dir(dir, a.node_name.as_deref())?;
        }
    }
    if let Some(l) = a.listen {
        cfg.listen = l;
    }
    if let Some(m) = a.metrics_listen {
        cfg.metrics_listen = Some(m);
    }
    if let Some(r) = a.retention_days {
        cfg.retention_days = r;
    }
    if let Some(mb) = a.block_cache_mb {
        cfg.block_cache_mb = mb;
    }
    cfg.validate()?;
    Ok(cfg)
}

async fn stop_signal() -> anyhow::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("listen for SIGTERM")?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => { r.context("listen for SIGINT")?; Ok("SIGINT") }
            _ = term.recv() => Ok("SIGTERM"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await.context("listen for Ctrl-C")?;
        Ok("Ctrl-C")
    }
}

/// Waits for SIGINT or SIGTERM; on each SIGHUP reloads the node's TLS
/// files (certificate, key, CA, CRLs), keeping the old ones if that fails.
async fn serve_until_stopped(node: &RunningNode) -> anyhow::Result<&'static str> {
    let stop = stop_signal();
    tokio::pin!(stop);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).context("listen for SIGHUP")?;
        loop {
            tokio::select! {
                sig = &mut stop => return sig,
                _ = hup.recv() => match node.reload_tls() {
                    // reload_tls logs the success itself.
                    Ok(_) => {}
                    Err(e) => error!(
                        error = %e,
                        "tls reload on SIGHUP failed: still serving with the previous configuration"
                    ),
                },
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = node;
        stop.await
    }
}

pub async fn run(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let cfg = config(&a)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("create data dir {}", cfg.data_dir.display()))?;
    let data = cfg.data_dir.clone();
    let opts = StoreOptions {
        block_cache_bytes: cfg.block_cache_mb << 20,
        ..StoreOptions::default()
    };
    let store = tokio::task::spawn_blocking(move || RocksStore::open(&data, opts))
        .await?
        .with_context(|| format!("open store at {}", cfg.data_dir.display()))?;
    let store = Arc::new(store);
    // Fill the block cache in the background (three quarters of it, with what
    // searches read): a restarted node then answers at its steady-state
    // speed instead of decompressing a block for nearly every row.
    let warm = store.clone();
    let budget = ((cfg.block_cache_mb as u64) << 20) / 4 * 3;
    tokio::task::spawn_blocking(move || {
        let started = std::time::Instant::now();
        match warm.warm_cache(budget) {
            Ok(bytes) => tracing::info!(
                mib = bytes >> 20,
                ms = started.elapsed().as_millis() as u64,
                "block cache warmed"
            ),
            Err(e) => tracing::warn!(error = %e, "warming the block cache failed"),
        }
    });
    let node = nadc_node::start(&cfg, store).await.context("start node")?;
    if let Some(f) = &a.addr_file {
        std::fs::write(f, node.addr.to_string())
            .with_context(|| format!("write {}", f.display()))?;
    }
    eprintln!("nadc node {} listening on https://{}", node.name, node.addr);
    if let Some(m) = node.metrics_addr {
        eprintln!("metrics on http://{m}/metrics");
    }
    let sig = serve_until_stopped(&node).await?;
    info!(signal = sig, "shutting down");
    node.shutdown().await.context("shut down")?;
    Ok(ExitCode::SUCCESS)
}
