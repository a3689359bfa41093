//! `nadc replica rebuild`: a new or rebuilt replica's store, copied from a
//! healthy replica of the same log (`Admin.Snapshot`), with a progress
//! bar. Started on it, the node replays the log after the position the
//! copy holds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use nadc_proto::pb;
use nadc_store::{RocksStore, Store, StoreOptions};

use crate::NodeArgs;
use crate::client::channel;

#[derive(Subcommand, Debug)]
pub enum ReplicaCommand {
    /// Copies a healthy replica's store into DATA (which must not exist),
    /// identified by this node's own certificate (--cert/--key: the node
    /// certificate the healthy node names in `snapshot_to`). Then start the
    /// node on DATA: it replays the log from where the copy ends.
    Rebuild {
        /// The healthy replica to copy (--node), and this node's identity.
        #[command(flatten)]
        node: NodeArgs,
        /// The new data directory.
        #[arg(long)]
        data: PathBuf,
        /// The stream of the log the copy follows (as in `[replication]`).
        #[arg(long, default_value = "NADC_READS")]
        stream: String,
    },
}

pub async fn run(cmd: ReplicaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReplicaCommand::Rebuild { node, data, stream } => rebuild(&node, &data, &stream).await,
    }
}

/// A file name of the snapshot: a plain name, never a path.
fn plain(name: &str) -> anyhow::Result<&str> {
    let ok = !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0']);
    if !ok {
        bail!("the snapshot names a file {name:?}: not a plain file name; refused");
    }
    Ok(name)
}

async fn rebuild(node: &NodeArgs, data: &Path, stream: &str) -> anyhow::Result<ExitCode> {
    if data.exists() {
        bail!(
            "{} exists: a replica is rebuilt into a new directory (move the old one aside first)",
            data.display()
        );
    }
    // Written beside it, renamed into place once whole.
    let mut partial = data.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("remove the unfinished {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial).with_context(|| format!("create {}", partial.display()))?;
    let mut client =
        pb::admin_client::AdminClient::new(channel(node).await?).max_decoding_message_size(4 << 20);
    let mut chunks = client
        .snapshot(pb::SnapshotRequest {})
        .await
        .map_err(nadc_bof::ClientError::from)
        .context("snapshot")?
        .into_inner();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut file: Option<(std::fs::File, String, u64)> = None;
    let mut ended = None;
    let mut expected_files = 0;
    let mut files = 0;
    use pb::snapshot_chunk::Part;
    while let Some(c) = chunks
        .message()
        .await
        .map_err(nadc_bof::ClientError::from)
        .context("snapshot")?
    {
        match c.part {
            Some(Part::Begin(b)) => {
                bar.set_length(b.bytes);
                expected_files = b.files;
            }
            Some(Part::File(f)) => {
                if let Some((_, name, left)) = &file
                    && *left != 0
                {
                    bail!("snapshot file {name} ended {left} bytes short");
                }
                let name = plain(&f.name)?.to_string();
                let path = partial.join(&name);
                let out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .with_context(|| format!("create {}", path.display()))?;
                bar.set_message(name.clone());
                file = Some((out, name, f.size));
                files += 1;
            }
            Some(Part::Data(bytes)) => {
                let Some((out, name, left)) = file.as_mut() else {
                    bail!("snapshot data before any file");
                };
                if bytes.len() as u64 > *left {
                    bail!("snapshot file {name} is longer than announced");
                }
                out.write_all(&bytes)
                    .with_context(|| format!("write {name}"))?;
                *left -= bytes.len() as u64;
                bar.inc(bytes.len() as u64);
            }
            Some(Part::End(e)) => ended = Some(e),
            None => bail!("an empty snapshot chunk"),
        }
    }
    bar.finish_and_clear();
    if let Some((_, name, left)) = &file
        && *left != 0
    {
        bail!("snapshot file {name} ended {left} bytes short");
    }
    let Some(end) = ended else {
        bail!("the snapshot ended before it was whole; nothing was kept");
    };
    if files != expected_files {
        bail!("the snapshot announced {expected_files} files and sent {files}");
    }
    for entry in std::fs::read_dir(&partial)? {
        let path = entry?.path();
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .with_context(|| format!("sync {}", path.display()))?;
    }
    // Opened once as a store: it must be whole, and it tells where in the
    // log the replica resumes.
    let (reads, position) = {
        let dir = partial.clone();
        let stream = stream.to_string();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let s = RocksStore::open(
                &dir,
                StoreOptions {
                    settle_in_background: false,
                    ..StoreOptions::default()
                },
            )
            .context("open the copied store")?;
            let reads = s.stats()?.total_reads();
            let position = s.log_position(&stream)?.map(|p| p.seq);
            s.close()?;
            Ok((reads, position))
        })
        .await??
    };
    if reads != end.reads {
        bail!(
            "the copy holds {reads} reads, the healthy replica sent {}",
            end.reads
        );
    }
    std::fs::rename(&partial, data)
        .with_context(|| format!("move {} to {}", partial.display(), data.display()))?;
    // The move itself made durable.
    if let Some(parent) = data.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::File::open(parent)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("sync {}", parent.display()))?;
    }
    println!(
        "rebuilt {}: {reads} reads, {files} files; the node resumes the log {stream} after position {}",
        data.display(),
        position.unwrap_or(0)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn a_snapshot_file_name_never_leaves_the_new_directory() {
        for bad in [
            "",
            ".",
            "..",
            "../CURRENT",
            "a/b",
            "/etc/passwd",
            "x\\y",
            "nul\0l",
        ] {
            assert!(plain(bad).is_err(), "{bad:?} was taken");
        }
        for good in [
            "000123.sst",
            "CURRENT",
            "MANIFEST-000005",
            "OPTIONS-000007",
            ".hidden",
        ] {
            assert_eq!(plain(good).unwrap(), good);
        }
    }
}
