//! The BOF's on-disk spool: reads are made durable on the BOF's own disk
//! before they are sent, so a node that is down, restarting or shedding
//! load costs a delay, never a read.
//!
//! # Layout
//! A spool is a directory:
//! - `LOCK`: held (an OS file lock) by the one process using the spool;
//! - `seg-<first seq, 20 digits>.log`: segments of records, appended in
//!   sequence order;
//! - `acked`: the highest sequence number the node has acknowledged (text).
//!
//! A record is `len:u32 · crc32:u32 · seq:u64 · payload`, little-endian,
//! where `payload` is a protobuf `ReadBatch` holding the reads and `len`
//! counts `seq` and the payload; the CRC covers the same bytes. A record is
//! written and its segment `fsync`ed before [`Spool::append`] returns, so
//! a batch the spool accepted survives the BOF process being killed. On
//! open, a torn record at the end of the last segment (a write cut short)
//! is truncated away; a bad record anywhere else is an error naming the
//! segment and offset, because it means the disk lost data.
//!
//! # Invariants
//! - Sequence numbers are contiguous from 1; a batch is sent with its
//!   sequence number as `batch_seq`, and acknowledgements come back in order.
//! - `acked` only moves forward. It is written with a rename and not
//!   synced: after a power cut it may be behind or empty, which only
//!   resends batches the node de-duplicates by read id. Reopened, it is
//!   never taken as earlier than the batch before the oldest segment kept.
//! - A segment is deleted only when every record in it is acknowledged and
//!   it is not the one being appended to.
//! - The spool never holds more than `max_bytes` of segments: an append
//!   that would pass it is refused with [`SpoolError::Full`] and nothing
//!   written; the producer waits (pausing its input) while [`deliver`]
//!   frees space as the node acknowledges.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prost::Message;
use rand::Rng;
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tracing::warn;

use crate::pb;
use crate::push::Rejected;

const HEADER: usize = 16;
const ACKED: &str = "acked";

/// Why the spool could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A file operation failed.
    #[error("spool {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another process holds the spool.
    #[error("spool {0} is in use by another process")]
    Locked(PathBuf),
    /// A record in the middle of the spool is damaged.
    #[error("spool segment {path} is damaged at byte {offset}: {what}")]
    Corrupt {
        /// The segment.
        path: PathBuf,
        /// Where the damaged record starts.
        offset: u64,
        /// What is wrong.
        what: String,
    },
    /// The spool is at its size limit; the batch was not written.
    #[error(
        "spool full: {used} of {max} bytes hold unacknowledged reads; the batch was not spooled"
    )]
    Full {
        /// Bytes in segments now.
        used: u64,
        /// The limit.
        max: u64,
    },
    /// The batch is larger than the spool could ever hold.
    #[error("a batch of {0} bytes is larger than the spool's limit")]
    TooLarge(u64),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a spool lives and how big it may grow.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    /// The spool directory (created if missing).
    pub dir: PathBuf,
    /// Most bytes of segments on disk.
    pub max_bytes: u64,
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
}

impl SpoolConfig {
    /// A spool in `dir` with the defaults: 1 GiB, 16 MiB segments.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
        }
    }
}

#[derive(Debug)]
struct Segment {
    first_seq: u64,
    last_seq: u64,
    path: PathBuf,
    len: u64,
}

struct State {
    segments: VecDeque<Segment>,
    writer: Option<File>,
    next_seq: u64,
    acked: u64,
    bytes: u64,
}

/// What the spool holds, for progress reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpoolStatus {
    /// The last sequence number written.
    pub written: u64,
    /// The last sequence number acknowledged.
    pub acked: u64,
    /// Bytes of segments on disk.
    pub bytes: u64,
}

/// An open spool. Share it with an `Arc` between the producer (appending)
/// and [`deliver`].
pub struct Spool {
    cfg: SpoolConfig,
    state: Mutex<State>,
    /// Signalled when a batch is appended or space is freed.
    changed: Notify,
    _lock: File,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("dir", &self.cfg.dir)
            .field("status", &self.status())
            .finish()
    }
}

/// One spooled batch.
#[derive(Clone, Debug)]
pub struct SpooledBatch {
    /// Its sequence number (sent as `batch_seq`).
    pub seq: u64,
    /// Its reads.
    pub reads: Vec<pb::Read>,
}

impl Spool {
    /// Opens (or creates) the spool in `cfg.dir`, recovering from a crash:
    /// a torn last record is dropped, acknowledged segments are deleted.
    pub fn open(cfg: SpoolConfig) -> Result<Self, SpoolError> {
        let dir = cfg.dir.clone();
        fs::create_dir_all(&dir).map_err(io(&dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked(dir)),
            Err(fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        let mut paths: Vec<(u64, PathBuf)> = fs::read_dir(&dir)
            .map_err(io(&dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let seq = name
                    .strip_prefix("seg-")?
                    .strip_suffix(".log")?
                    .parse()
                    .ok()?;
                Some((seq, e.path()))
            })
            .collect();
        paths.sort();
        let mut segments = VecDeque::new();
        let last = paths.len().saturating_sub(1);
        for (i, (first_seq, path)) in paths.into_iter().enumerate() {
            let (len, last_seq) = scan_segment(&path, first_seq, i == last)?;
            segments.push_back(Segment {
                first_seq,
                last_seq,
                path,
                len,
            });
        }
        // The mark may be behind, or empty, after a power cut (it is not
        // synced), but a segment is deleted only once all of it is
        // acknowledged: everything before the oldest one kept is.
        let acked = read_acked(&dir).max(
            segments
                .front()
                .map_or(0, |s: &Segment| s.first_seq.saturating_sub(1)),
        );
        let next_seq = segments.back().map_or(acked + 1, |s| s.last_seq + 1);
        let bytes = segments.iter().map(|s| s.len).sum();
        let spool = Spool {
            cfg,
            state: Mutex::new(State {
                segments,
                writer: None,
                next_seq: next_seq.max(acked + 1),
                acked,
                bytes,
            }),
            changed: Notify::new(),
            _lock: lock,
        };
        spool.collect_garbage(&mut spool.lock())?;
        Ok(spool)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the spool holds now.
    pub fn status(&self) -> SpoolStatus {
        let s = self.lock();
        SpoolStatus {
            written: s.next_seq - 1,
            acked: s.acked,
            bytes: s.bytes,
        }
    }

    /// Writes `reads` as the next batch and syncs it to disk; returns its
    /// sequence number. [`SpoolError::Full`] if it would pass `max_bytes`
    /// (nothing was written: wait for acknowledgements and try again).
    pub fn append(&self, reads: &[pb::Read]) -> Result<u64, SpoolError> {
        let payload = pb::ReadBatch {
            batch_seq: 0,
            force: String::new(),
            reads: reads.to_vec(),
        }
        .encode_to_vec();
        let size = (HEADER + payload.len()) as u64;
        if size > self.cfg.max_bytes {
            return Err(SpoolError::TooLarge(size));
        }
        let mut s = self.lock();
        if s.bytes + size > self.cfg.max_bytes {
            return Err(SpoolError::Full {
                used: s.bytes,
                max: self.cfg.max_bytes,
            });
        }
        let seq = s.next_seq;
        let rotate = s.writer.is_none()
            || s.segments
                .back()
                .is_none_or(|seg| seg.len >= self.cfg.segment_bytes);
        if rotate {
            let path = self.cfg.dir.join(format!("seg-{seq:020}.log"));
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io(&path))?;
            sync_dir(&self.cfg.dir)?;
            s.writer = Some(file);
            s.segments.push_back(Segment {
                first_seq: seq,
                last_seq: seq - 1,
                path,
                len: 0,
            });
        }
        let mut record = Vec::with_capacity(size as usize);
        record.extend_from_slice(&((8 + payload.len()) as u32).to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&seq.to_le_bytes());
        crc.update(&payload);
        record.extend_from_slice(&crc.finalize().to_le_bytes());
        record.extend_from_slice(&seq.to_le_bytes());
        record.extend_from_slice(&payload);
        let seg_path = s
            .segments
            .back()
            .map(|x| x.path.clone())
            .unwrap_or_default();
        let file = s.writer.as_mut().expect("a segment is open");
        file.write_all(&record)
            .and_then(|()| file.sync_data())
            .map_err(io(&seg_path))?;
        let seg = s.segments.back_mut().expect("a segment is open");
        seg.len += size;
        seg.last_seq = seq;
        s.bytes += size;
        s.next_seq = seq + 1;
        drop(s);
        self.changed.notify_waiters();
        Ok(seq)
    }

    /// Records that the node acknowledged every batch up to `seq`, and
    /// deletes segments no longer needed.
    pub fn ack(&self, seq: u64) -> Result<(), SpoolError> {
        let mut s = self.lock();
        if seq <= s.acked {
            return Ok(());
        }
        s.acked = seq.min(s.next_seq - 1);
        let tmp = self.cfg.dir.join("acked.tmp");
        fs::write(&tmp, s.acked.to_string()).map_err(io(&tmp))?;
        let path = self.cfg.dir.join(ACKED);
        fs::rename(&tmp, &path).map_err(io(&path))?;
        self.collect_garbage(&mut s)?;
        drop(s);
        self.changed.notify_waiters();
        Ok(())
    }

    fn collect_garbage(&self, s: &mut State) -> Result<(), SpoolError> {
        while s.segments.len() > 1 || (s.writer.is_none() && !s.segments.is_empty()) {
            let seg = &s.segments[0];
            if seg.last_seq > s.acked {
                break;
            }
            fs::remove_file(&seg.path).map_err(io(&seg.path))?;
            s.bytes -= seg.len;
            s.segments.pop_front();
        }
        Ok(())
    }

    /// Up to `max` batches after `cursor`'s position, in order, read from
    /// disk; moves the cursor past them.
    pub fn read_next(
        &self,
        cursor: &mut Cursor,
        max: usize,
    ) -> Result<Vec<SpooledBatch>, SpoolError> {
        let segs: Vec<(PathBuf, u64, u64)> = {
            let s = self.lock();
            s.segments
                .iter()
                .filter(|seg| seg.last_seq > cursor.after && seg.last_seq >= seg.first_seq)
                .map(|seg| (seg.path.clone(), seg.first_seq, seg.len))
                .collect()
        };
        let mut out = Vec::new();
        for (path, first_seq, len) in segs {
            let mut offset = if cursor.segment == first_seq {
                cursor.offset
            } else {
                0
            };
            let mut r = BufReader::new(File::open(&path).map_err(io(&path))?);
            r.seek(SeekFrom::Start(offset)).map_err(io(&path))?;
            while offset < len && out.len() < max {
                let (seq, payload, size) = read_record(&mut r, &path, offset)?;
                offset += size;
                (cursor.segment, cursor.offset) = (first_seq, offset);
                if seq > cursor.after {
                    let batch = pb::ReadBatch::decode(payload.as_slice()).map_err(|e| {
                        SpoolError::Corrupt {
                            path: path.clone(),
                            offset,
                            what: e.to_string(),
                        }
                    })?;
                    cursor.after = seq;
                    out.push(SpooledBatch {
                        seq,
                        reads: batch.reads,
                    });
                }
            }
            if out.len() >= max {
                break;
            }
        }
        Ok(out)
    }

    /// Up to `max` batches after sequence number `after`, in order.
    pub fn read_after(&self, after: u64, max: usize) -> Result<Vec<SpooledBatch>, SpoolError> {
        self.read_next(&mut Cursor::after(after), max)
    }
}

/// A reading position in a spool: the last batch read, and where the next
/// record starts, so following the spool does not rescan segments.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cursor {
    after: u64,
    segment: u64,
    offset: u64,
}

impl Cursor {
    /// A cursor before batch `after + 1`.
    pub fn after(after: u64) -> Self {
        Self {
            after,
            segment: 0,
            offset: 0,
        }
    }
}

fn read_acked(dir: &Path) -> u64 {
    let path = dir.join(ACKED);
    match fs::read_to_string(&path) {
        Ok(t) => t.trim().parse().unwrap_or_else(|_| {
            warn!(path = %path.display(), "spool acknowledgement mark unreadable; resending everything spooled (the node drops duplicates)");
            0
        }),
        Err(_) => 0,
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// Reads one record at `offset`: (seq, payload, bytes used).
fn read_record(
    r: &mut impl Read,
    path: &Path,
    offset: u64,
) -> Result<(u64, Vec<u8>, u64), SpoolError> {
    let corrupt = |what: String| SpoolError::Corrupt {
        path: path.to_path_buf(),
        offset,
        what,
    };
    let mut head = [0u8; HEADER];
    r.read_exact(&mut head)
        .map_err(|e| corrupt(format!("header: {e}")))?;
    let len = u32::from_le_bytes(head[0..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes"));
    let seq = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
    if len < 8 {
        return Err(corrupt(format!("record length {len}")));
    }
    let mut payload = vec![0u8; len - 8];
    r.read_exact(&mut payload)
        .map_err(|e| corrupt(format!("payload: {e}")))?;
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(&payload);
    if h.finalize() != crc {
        return Err(corrupt("checksum mismatch".into()));
    }
    Ok((seq, payload, (HEADER - 8 + len) as u64))
}

/// Checks every record of a segment; returns (valid length, last seq). In
/// the last segment a damaged tail is a write cut short and is truncated.
fn scan_segment(path: &Path, first_seq: u64, last: bool) -> Result<(u64, u64), SpoolError> {
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io(path))?;
    let total = f.metadata().map_err(io(path))?.len();
    let mut r = BufReader::new(&mut f);
    let (mut offset, mut expect) = (0u64, first_seq);
    while offset < total {
        match read_record(&mut r, path, offset) {
            Ok((seq, _, size)) if seq == expect => {
                offset += size;
                expect += 1;
            }
            Ok((seq, _, _)) => {
                return Err(SpoolError::Corrupt {
                    path: path.to_path_buf(),
                    offset,
                    what: format!("sequence {seq} where {expect} was expected"),
                });
            }
            Err(e) if !last => return Err(e),
            Err(_) => {
                warn!(segment = %path.display(), offset, dropped = total - offset,
                    "spool: dropping a record cut short by a crash (it was never acknowledged to the producer)");
                drop(r);
                f.set_len(offset).map_err(io(path))?;
                f.sync_all().map_err(io(path))?;
                break;
            }
        }
    }
    let _ = f.seek(SeekFrom::End(0));
    Ok((offset, expect - 1))
}

/// How delivery retries.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// First backoff.
    pub base: Duration,
    /// Longest backoff.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (from 0): "full jitter", a
    /// uniform draw below the exponential bound, but never less than the
    /// node's own hint.
    pub fn backoff(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        let bound = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.cap);
        let mut rng = rand::rng();
        let jittered = bound.mul_f64(rng.random_range(0.0..=1.0));
        match hint {
            Some(h) => h + h.mul_f64(rng.random_range(0.0..=0.2)),
            None => jittered,
        }
    }
}

/// What happened during delivery, for the caller to report.
#[derive(Debug)]
pub enum DeliveryEvent {
    /// The node acknowledged batch `seq`.
    Acked {
        /// The batch.
        seq: u64,
        /// Reads it stored.
        accepted: u32,
        /// Reads it already held.
        duplicates: u32,
        /// Reads it refused, with reasons (they are not retried).
        rejected: Vec<Rejected>,
    },
    /// Delivery failed and will be retried after `wait`.
    Retrying {
        /// Why.
        error: String,
        /// The backoff chosen.
        wait: Duration,
    },
}

/// Whether a failed call is worth retrying: the node was unreachable,
/// overloaded or restarting. Refusals of the caller (permission, bad
/// request) are not: retrying cannot succeed.
pub fn retryable(s: &tonic::Status) -> bool {
    use tonic::Code::*;
    matches!(
        s.code(),
        Unavailable
            | ResourceExhausted
            | DeadlineExceeded
            | Aborted
            | Cancelled
            | Unknown
            | Internal
    )
}

/// Sends the spool's batches to the node in order over `PushStream`,
/// acknowledging each in the spool, and retrying with backoff and jitter
/// whenever the node is unreachable or refuses with a retryable error.
///
/// Runs until `stop` is set and everything spooled is acknowledged (wrap
/// it in a timeout to give up on a node that stays down: the spool keeps
/// what was not delivered for the next run). A refusal
/// that retrying cannot fix (e.g. `PERMISSION_DENIED`) ends delivery with
/// that error; the spool keeps the batches.
pub async fn deliver(
    spool: Arc<Spool>,
    channel: Channel,
    window: usize,
    retry: RetryPolicy,
    mut stop: watch::Receiver<bool>,
    mut events: impl FnMut(DeliveryEvent) + Send,
) -> Result<(), crate::ClientError> {
    let window = window.max(1);
    let mut attempt = 0u32;
    loop {
        if *stop.borrow() && spool.status().acked == spool.status().written {
            return Ok(());
        }
        let before = spool.status().acked;
        let outcome = deliver_once(&spool, channel.clone(), window, &stop, &mut events).await;
        if spool.status().acked > before {
            attempt = 0;
        }
        let status = match outcome {
            Ok(()) => return Ok(()),
            Err(s) if retryable(&s) => s,
            Err(s) => return Err(crate::ClientError::Rpc(s)),
        };
        let wait = retry.backoff(attempt, crate::retry_after(&status));
        attempt = attempt.saturating_add(1);
        events(DeliveryEvent::Retrying {
            error: crate::describe_status(&status),
            wait,
        });
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

/// One `PushStream` call: sends from the first unacknowledged batch on;
/// returns `Ok` only when asked to stop, once what it sent is acknowledged.
async fn deliver_once(
    spool: &Arc<Spool>,
    channel: Channel,
    window: usize,
    stop: &watch::Receiver<bool>,
    events: &mut (impl FnMut(DeliveryEvent) + Send),
) -> Result<(), tonic::Status> {
    let permits = Arc::new(Semaphore::new(window));
    let (tx, rx) = mpsc::channel::<pb::ReadBatch>(window);
    let sender = {
        let (spool, permits, stop) = (spool.clone(), permits.clone(), stop.clone());
        tokio::spawn(async move { send_spooled(spool, permits, tx, stop).await })
    };
    let _stop_sender = crate::AbortOnDrop(sender.abort_handle());
    let mut client = pb::ingest_client::IngestClient::new(channel)
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20);
    let mut results = client
        .push_stream(ReceiverStream::new(rx))
        .await?
        .into_inner();
    while let Some(r) = results.message().await? {
        let expected = spool.status().acked + 1;
        if r.batch_seq != expected {
            return Err(tonic::Status::internal(format!(
                "the node acknowledged batch {} where {expected} was next",
                r.batch_seq
            )));
        }
        spool
            .ack(r.batch_seq)
            .map_err(|e| tonic::Status::aborted(format!("record acknowledgement: {e}")))?;
        permits.add_permits(1);
        events(DeliveryEvent::Acked {
            seq: r.batch_seq,
            accepted: r.accepted,
            duplicates: r.duplicates,
            rejected: r
                .rejected
                .into_iter()
                .map(|x| Rejected {
                    batch_seq: r.batch_seq,
                    index: x.index,
                    read_id: x.read_id,
                    code: nadc_proto::code_name(x.code),
                    message: x.message,
                })
                .collect(),
        });
    }
    // The stream ended. Asked to stop: the sender stopped and everything it
    // sent is acknowledged. Otherwise the node ended it (a clean restart
    // does, even when every batch is acknowledged): reconnect, or batches
    // spooled from now on would never be sent.
    if !*stop.borrow() {
        return Err(tonic::Status::unavailable("the node ended the push stream"));
    }
    Ok(())
}

/// Feeds spooled batches into the request stream, at most `window`
/// unacknowledged, following new appends until `stop`.
async fn send_spooled(
    spool: Arc<Spool>,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<pb::ReadBatch>,
    mut stop: watch::Receiver<bool>,
) {
    let mut cursor = Cursor::after(spool.status().acked);
    loop {
        let appended = spool.changed.notified();
        let batches = {
            let spool = spool.clone();
            let read = tokio::task::spawn_blocking(move || {
                let b = spool.read_next(&mut cursor, 16);
                (cursor, b)
            });
            match read.await {
                Ok((c, Ok(b))) => {
                    cursor = c;
                    b
                }
                Ok((_, Err(e))) => {
                    warn!(error = %e, "spool unreadable; delivery stops");
                    return;
                }
                Err(_) => return,
            }
        };
        if batches.is_empty() {
            if *stop.borrow() {
                // Nothing more to send: end the request stream once all
                // sent batches are acknowledged, so the call completes.
                return;
            }
            tokio::select! {
                _ = appended => {}
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        for b in batches {
            let Ok(permit) = permits.acquire().await else {
                return;
            };
            permit.forget();
            let batch = pb::ReadBatch {
                batch_seq: b.seq,
                force: String::new(),
                reads: b.reads,
            };
            if tx.send(batch).await.is_err() {
                return;
            }
        }
    }
}

/// Logs a full spool once, in words an operator can act on.
pub fn warn_full(e: &SpoolError) {
    warn!(error = %e, "spool full: the node is not acknowledging fast enough or is unreachable; reading input is paused until it catches up");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(id: &str) -> pb::Read {
        pb::Read {
            read_id: id.into(),
            vrm: "AB12CDE".into(),
            camera_id: "CAM1".into(),
            ..Default::default()
        }
    }

    fn segments(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("seg-")
            })
            .count()
    }

    fn cfg(dir: &Path) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes: 1 << 20,
            segment_bytes: 200,
        }
    }

    #[test]
    fn batches_survive_reopening_in_order_and_acked_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Spool::open(cfg(dir.path())).unwrap();
            for i in 1..=10 {
                assert_eq!(s.append(&[read(&format!("r{i}"))]).unwrap(), i);
            }
            s.ack(4).unwrap();
        }
        let s = Spool::open(cfg(dir.path())).unwrap();
        assert_eq!((s.status().written, s.status().acked), (10, 4));
        let rest = s.read_after(4, 100).unwrap();
        let ids: Vec<_> = rest.iter().map(|b| b.reads[0].read_id.as_str()).collect();
        assert_eq!(ids, ["r5", "r6", "r7", "r8", "r9", "r10"]);
        assert_eq!(rest[0].seq, 5);
        // Small segments: the acknowledged ones are gone from disk.
        let segs = segments(dir.path());
        s.ack(10).unwrap();
        let after = segments(dir.path());
        assert!(
            after < segs,
            "{segs} segments before, {after} after acking all"
        );
        assert_eq!(s.append(&[read("r11")]).unwrap(), 11);
    }

    #[test]
    fn a_lost_acknowledgement_mark_resumes_from_the_oldest_segment_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first_kept;
        {
            let s = Spool::open(cfg(dir.path())).unwrap();
            for i in 1..=10 {
                s.append(&[read(&format!("r{i}"))]).unwrap();
            }
            s.ack(6).unwrap();
            first_kept = s.lock().segments[0].first_seq;
        }
        assert!(first_kept > 1, "no segment was deleted");
        // A power cut left the renamed mark empty.
        fs::write(dir.path().join(ACKED), "").unwrap();
        let s = Spool::open(cfg(dir.path())).unwrap();
        assert_eq!(s.status().acked, first_kept - 1);
        // What delivery sends next is the batch after the mark.
        let next = s.read_after(s.status().acked, 1).unwrap();
        assert_eq!(next[0].seq, first_kept);
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_the_rest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let seg;
        {
            let s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
            s.append(&[read("a")]).unwrap();
            s.append(&[read("b")]).unwrap();
            seg = s.lock().segments[0].path.clone();
        }
        // A crash mid-write: half a record at the end.
        let len = fs::metadata(&seg).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[40, 0, 0, 0, 1, 2, 3]).unwrap();
        drop(f);
        let s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        assert_eq!(fs::metadata(&seg).unwrap().len(), len);
        assert_eq!(s.status().written, 2);
        assert_eq!(s.append(&[read("c")]).unwrap(), 3);
        let ids: Vec<_> = s
            .read_after(0, 10)
            .unwrap()
            .into_iter()
            .map(|b| b.reads[0].read_id.clone())
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
    }

    #[test]
    fn damage_before_the_end_is_an_error_naming_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Spool::open(cfg(dir.path())).unwrap();
            for i in 0..12 {
                s.append(&[read(&format!("r{i}"))]).unwrap();
            }
            assert!(s.lock().segments.len() > 1);
        }
        let first = dir.path().join(format!("seg-{:020}.log", 1));
        let mut bytes = fs::read(&first).unwrap();
        bytes[HEADER + 2] ^= 0xff;
        fs::write(&first, bytes).unwrap();
        let e = Spool::open(cfg(dir.path())).unwrap_err().to_string();
        assert!(e.contains("seg-") && e.contains("checksum"), "{e}");
    }

    #[test]
    fn a_full_spool_refuses_without_writing_and_accepts_after_acks() {
        let dir = tempfile::tempdir().unwrap();
        let s = Spool::open(SpoolConfig {
            dir: dir.path().to_path_buf(),
            max_bytes: 300,
            segment_bytes: 1,
        })
        .unwrap();
        let mut n = 0;
        let e = loop {
            match s.append(&[read("x")]) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(e, SpoolError::Full { max: 300, .. }), "{e}");
        assert!(s.status().bytes <= 300);
        assert_eq!(s.status().written, n);
        s.ack(n).unwrap();
        assert!(s.append(&[read("y")]).is_ok());
    }

    #[test]
    fn a_second_process_cannot_open_a_spool_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Spool::open(SpoolConfig::new(dir.path())).unwrap();
        assert!(matches!(
            Spool::open(SpoolConfig::new(dir.path())),
            Err(SpoolError::Locked(_))
        ));
    }

    #[test]
    fn backoff_is_jittered_below_its_bound_and_honours_the_node_hint() {
        let p = RetryPolicy::default();
        for attempt in 0..20 {
            let w = p.backoff(attempt, None);
            assert!(w <= p.cap, "{w:?}");
            assert!(w <= p.base * (1 << attempt.min(16)), "{attempt}: {w:?}");
        }
        let distinct: std::collections::HashSet<_> = (0..20).map(|_| p.backoff(8, None)).collect();
        assert!(distinct.len() > 10, "no jitter: {distinct:?}");
        let hinted = p.backoff(0, Some(Duration::from_secs(5)));
        assert!(hinted >= Duration::from_secs(5) && hinted <= Duration::from_secs(6));
    }
}
