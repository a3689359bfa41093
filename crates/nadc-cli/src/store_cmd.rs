//! `nadc store`: offline maintenance of a node's data directory (the node
//! must be stopped: the store is locked while a node holds it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use nadc_store::{RocksStore, Store, StoreOptions};

#[derive(Subcommand, Debug)]
pub enum StoreCommand {
    /// Disk use per column family and bytes per read.
    Usage {
        /// The node's data directory.
        #[arg(long)]
        data: PathBuf,
        /// Settle every open day, then fully compact every column family
        /// first (the size a store reaches as its days settle and the
        /// engine compacts on its own).
        #[arg(long)]
        compact: bool,
    },
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
}

pub fn run(command: StoreCommand) -> anyhow::Result<ExitCode> {
    match command {
        StoreCommand::Usage { data, compact } => {
            anyhow::ensure!(
                data.join("CURRENT").exists(),
                "{} holds no nadc store",
                data.display()
            );
            let store = RocksStore::open(&data, StoreOptions::default()).with_context(|| {
                format!(
                    "open the store in {} (is a node running on it?)",
                    data.display()
                )
            })?;
            if compact {
                let settled = store.settle_open_days()?;
                if !settled.is_empty() {
                    eprintln!(
                        "settled {} day(s), {} reads",
                        settled.len(),
                        settled.iter().map(|s| s.reads).sum::<u64>()
                    );
                }
                store.compact()?;
            }
            let reads: u64 = store.stats()?.reads_by_force.values().sum();
            let per_read = |b: u64| b as f64 / reads.max(1) as f64;
            println!(
                "{:<16} {:>14} {:>14} {:>10}",
                "column family", "table bytes", "keys (est.)", "B/read"
            );
            let usage = store.usage()?;
            for u in usage.iter().filter(|u| u.table_bytes > 0) {
                println!(
                    "{:<16} {:>14} {:>14} {:>10.1}",
                    u.name,
                    u.table_bytes,
                    u.keys,
                    per_read(u.table_bytes)
                );
            }
            let tables: u64 = usage.iter().map(|u| u.table_bytes).sum();
            store.close()?;
            drop(store);
            let on_disk = dir_bytes(&data)?;
            println!(
                "{:<16} {:>14} {:>14} {:>10.1}",
                "all tables",
                tables,
                "",
                per_read(tables)
            );
            println!(
                "{:<16} {:>14} {:>14} {:>10.1}",
                "data directory",
                on_disk,
                "",
                per_read(on_disk)
            );
            println!(
                "reads: {reads}{}",
                if compact { " (compacted)" } else { "" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
