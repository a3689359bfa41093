//! `Admin.Snapshot`: a consistent copy of this node's store, streamed to a
//! replica of the same log that is being built or rebuilt
//! (`nadc replica rebuild`). The replica then replays the log from the
//! position the copy holds.
//!
//! The whole store leaves the node, so the path is narrow: only the node
//! certificate of a replica named in `[replication] snapshot_to` passes,
//! and the snapshot is audited, durably, before its first byte is sent.
//! The copy leaves out what is this node's own (its audit chain and
//! registers).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nadc_core::Principal;
use nadc_core::audit::Outcome;
use nadc_proto::pb;
use nadc_store::Store;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{info, warn};

use crate::error::ServiceError;
use crate::governance::{Actor, Audited, Governance};
use crate::replication::Replication;

/// Bytes of a file in one chunk.
const CHUNK: usize = 1 << 20;
/// How long a chunk waits for the receiver to take it.
const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes what snapshots a node was sending when it stopped left behind
/// (their files are hard links to the store's: they would hold its space).
pub fn clear_leftovers(data_dir: &Path) {
    let dir = data_dir.join("snapshots");
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        warn!(dir = %dir.display(), error = %e, "could not remove snapshots left from before");
    }
}

/// Chunks of a snapshot, as streamed.
pub type SnapshotStream = tokio_stream::wrappers::ReceiverStream<Result<pb::SnapshotChunk, Status>>;

/// A snapshot's directory, removed when dropped (its files are hard links
/// to the store's or new files of the copy: removing them frees nothing
/// the store uses).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.0.exists()
            && let Err(e) = std::fs::remove_dir_all(&self.0)
        {
            warn!(dir = %self.0.display(), error = %e, "could not remove a snapshot's directory");
        }
    }
}

/// Takes and streams a snapshot for `who`, if it may have one.
pub async fn snapshot(
    who: &Principal,
    replication: Option<&Arc<Replication>>,
    store: Arc<dyn Store>,
    governance: &Arc<Governance>,
    data_dir: &Path,
) -> Result<SnapshotStream, ServiceError> {
    let name = match who {
        Principal::Node { name } => name.clone(),
        _ => return Err(ServiceError::denied("a snapshot is only for a node")),
    };
    let Some(replication) = replication else {
        return Err(ServiceError::precondition(
            "this node is not in replicated mode: it has no log for a replica to follow",
        ));
    };
    let actor = Actor::of(who);
    if !replication.may_snapshot(&name) {
        let why = format!(
            "node {name} is not named in this node's [replication] snapshot_to: it may not take a copy of the store"
        );
        let what = Audited::default();
        governance
            .record(governance.entry(
                &actor,
                "replica.snapshot",
                &what,
                Outcome::Refused(why.clone()),
            ))
            .await?;
        return Err(ServiceError::denied(why));
    }
    let dir = data_dir.join("snapshots").join(format!(
        "for-{name}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let (scratch, files, counts) = {
        let dir = dir.clone();
        let store = store.clone();
        tokio::task::spawn_blocking(move || -> Result<_, ServiceError> {
            if let Some(parent) = dir.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| ServiceError::unavailable(format!("snapshot directory: {e}")))?;
            }
            // Removed however this ends (a failed checkpoint's part too).
            let scratch = Scratch(dir.clone());
            let counts = store.replica_snapshot(&dir)?;
            let mut files = Vec::new();
            for e in std::fs::read_dir(&dir)
                .map_err(|e| ServiceError::unavailable(format!("snapshot directory: {e}")))?
            {
                let e = e.map_err(|e| ServiceError::unavailable(e.to_string()))?;
                let meta = e
                    .metadata()
                    .map_err(|e| ServiceError::unavailable(e.to_string()))?;
                if meta.is_file() {
                    files.push((e.file_name().to_string_lossy().into_owned(), meta.len()));
                }
            }
            files.sort();
            Ok((scratch, files, counts))
        })
        .await
        .map_err(|e| ServiceError::internal(format!("snapshot task failed: {e}")))??
    };
    let bytes: u64 = files.iter().map(|(_, n)| n).sum();
    // Audited before the first byte leaves: who took it, and whose reads.
    let what = Audited::holdings(
        serde_json::json!({"files": files.len(), "bytes": bytes}),
        &counts,
    );
    governance
        .record(governance.entry(&actor, "replica.snapshot", &what, Outcome::Ok))
        .await?;
    info!(to = %name, files = files.len(), bytes, "sending a snapshot of the store");
    let (tx, rx) = mpsc::channel(4);
    let reads = counts.values().sum();
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _scratch = scratch;
        // A receiver that takes nothing for a minute is given up on (the
        // copy's files are then removed).
        let send = |item: Result<Part, Status>| {
            let chunk = item.map(|part| pb::SnapshotChunk { part: Some(part) });
            rt.block_on(tx.send_timeout(chunk, SEND_TIMEOUT)).is_ok()
        };
        use pb::snapshot_chunk::Part;
        if !send(Ok(Part::Begin(pb::SnapshotBegin {
            files: files.len() as u64,
            bytes,
        }))) {
            return;
        }
        for (file, size) in files {
            if !send(Ok(Part::File(pb::SnapshotFile {
                name: file.clone(),
                size,
            }))) {
                return;
            }
            // Its bytes in chunks; false once the receiver has gone.
            let sent = (|| -> std::io::Result<bool> {
                let mut f = std::fs::File::open(dir.join(&file))?;
                let mut left = size;
                while left > 0 {
                    let mut buf = vec![0; CHUNK.min(left as usize)];
                    std::io::Read::read_exact(&mut f, &mut buf)?;
                    left -= buf.len() as u64;
                    if !send(Ok(Part::Data(buf))) {
                        return Ok(false);
                    }
                }
                Ok(true)
            })();
            match sent {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    send(Err(Status::unavailable(format!(
                        "snapshot file {file}: {e}"
                    ))));
                    return;
                }
            }
        }
        send(Ok(Part::End(pb::SnapshotEnd { reads })));
    });
    Ok(tokio_stream::wrappers::ReceiverStream::new(rx))
}
