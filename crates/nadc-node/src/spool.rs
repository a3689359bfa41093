//! Result spools: where a search's results wait for a slow client, so that
//! the search's blocking thread is freed as soon as its answer is computed.
//!
//! A search computes on a blocking thread (a search worker) and pushes its
//! result chunks into a spool; an async task sends them to the client at
//! the client's pace. Pushing never waits for the client:
//!
//! - a chunk is kept in memory as it is, counted on the budget by its
//!   encoded size (it takes about twice that as values; a chunk is
//!   encoded once, to be sent: encoding it to hold it and decoding it to
//!   send it cost a large search a quarter of its node's CPU), while the search holds less than
//!   [`SEARCH_MEMORY`] there and the node's spools together less than
//!   `limits.spool_memory_bytes`;
//! - otherwise it is written to the search's spill file in
//!   `<data_dir>/spool/`, unlinked as soon as it is created (nothing is
//!   left behind by a crash; the space is freed when the search ends), and
//!   truncated whenever its reader has caught up;
//! - a chunk that would take the node's spill files past
//!   `limits.spool_disk_bytes` ([`Stop::Full`]), or one search's past its
//!   share ([`Stop::TooLarge`]: so that one user's slow readers cannot
//!   take the whole budget), is refused; the search ends there, audited as
//!   failed, and its client is told why.
//!
//! Chunks come out in the order they went in. When the client goes away or
//! stalls, the sender marks the spool stopped and the search's next push
//! fails, so a search nobody reads stops computing.

use std::collections::VecDeque;
use std::fs::File;
use std::marker::PhantomData;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use prost::Message;
use tokio::sync::Notify;

use crate::workers::Gone;

/// The most one search keeps in memory before it spills to disk, bytes.
pub const SEARCH_MEMORY: usize = 4 << 20;

/// Chunks read from a spill file at once.
const FILE_BATCH: usize = 8;

/// Why a spool takes no more chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stop {
    /// Its client went away or stalled.
    Gone(Gone),
    /// The node's spill files are at `limits.spool_disk_bytes`.
    Full(u64),
    /// This search's spill file is at its share of the disk budget.
    TooLarge(u64),
    /// Its spill file could not be created, written or read.
    Broken(String),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Gone(g) => g.fmt(f),
            Stop::Full(cap) => write!(
                f,
                "the node's result spool is full ({cap} bytes on disk, \
                 limits.spool_disk_bytes): try again with a smaller limit or later"
            ),
            Stop::TooLarge(cap) => write!(
                f,
                "this search's results waiting for the client reached {cap} bytes on disk \
                 (limits.spool_disk_bytes / 2 / searches_per_user): read faster or ask for \
                 fewer rows"
            ),
            Stop::Broken(e) => write!(f, "the node's result spool failed: {e}"),
        }
    }
}

/// The node's spools: where spill files go and the memory and disk all
/// spools may use. Cheap to clone.
#[derive(Clone)]
pub struct Spools {
    dir: PathBuf,
    memory_cap: usize,
    disk_cap: u64,
    search_disk_cap: u64,
    memory: Arc<AtomicUsize>,
    disk: Arc<AtomicU64>,
    next: Arc<AtomicU64>,
}

impl Spools {
    /// Spools spilling into `dir` (created, and emptied of anything an
    /// earlier run left there), holding at most `memory_cap` bytes in
    /// memory and `disk_cap` on disk, each search at most
    /// `search_disk_cap` on disk.
    pub fn new(
        dir: PathBuf,
        memory_cap: usize,
        disk_cap: u64,
        search_disk_cap: u64,
    ) -> std::io::Result<Self> {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            memory_cap,
            disk_cap,
            search_disk_cap,
            memory: Arc::new(AtomicUsize::new(0)),
            disk: Arc::new(AtomicU64::new(0)),
            next: Arc::new(AtomicU64::new(0)),
        })
    }

    /// A new spool: the writer for the search, the reader for its sender.
    pub fn open<T: Message + Default>(&self) -> (SpoolWriter<T>, SpoolReader<T>) {
        let shared = Arc::new(Shared {
            spools: self.clone(),
            state: Mutex::new(State {
                memory: VecDeque::new(),
                memory_bytes: 0,
                file: None,
                unread: 0,
                read_at: 0,
                end: 0,
                stop: None,
                finished: false,
            }),
            notify: Notify::new(),
        });
        (
            SpoolWriter {
                shared: shared.clone(),
                pushed: std::cell::Cell::new(false),
                _one_writer: PhantomData,
            },
            SpoolReader {
                shared,
                _item: PhantomData,
            },
        )
    }

    /// Bytes held in memory by all spools now.
    pub fn memory_used(&self) -> usize {
        self.memory.load(Ordering::Relaxed)
    }

    /// Bytes held in spill files by all spools now.
    pub fn disk_used(&self) -> u64 {
        self.disk.load(Ordering::Relaxed)
    }

    /// Takes `n` bytes of the memory budget, if the node has them.
    fn take_memory(&self, n: usize) -> bool {
        self.memory
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + n <= self.memory_cap).then_some(used + n)
            })
            .is_ok()
    }

    /// Takes `n` bytes of the disk budget, if the node has them.
    fn take_disk(&self, n: u64) -> bool {
        self.disk
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + n <= self.disk_cap).then_some(used + n)
            })
            .is_ok()
    }

    /// A new spill file, unlinked at once: it lives as long as its handle.
    fn spill_file(&self) -> std::io::Result<File> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{}-{n}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        Ok(file)
    }
}

struct Shared<T> {
    spools: Spools,
    state: Mutex<State<T>>,
    notify: Notify,
}

/// A spool's chunks: those in memory (each with its encoded size, what it
/// counts on the budget) come before those in its file, encoded (a chunk
/// goes to memory only while the file has none unread).
struct State<T> {
    memory: VecDeque<(T, usize)>,
    memory_bytes: usize,
    file: Option<Arc<File>>,
    /// Chunks written to the file and not yet read.
    unread: usize,
    /// Where the next unread chunk starts in the file.
    read_at: u64,
    /// Where the file's written chunks end (bytes counted on the disk
    /// budget).
    end: u64,
    stop: Option<Stop>,
    finished: bool,
}

impl<T> Shared<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stop(&self, s: &mut State<T>, why: Stop) -> Stop {
        s.stop = Some(why.clone());
        why
    }
}

impl<T> Drop for Shared<T> {
    fn drop(&mut self) {
        let s = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        self.spools
            .memory
            .fetch_sub(s.memory_bytes, Ordering::AcqRel);
        self.spools.disk.fetch_sub(s.end, Ordering::AcqRel);
    }
}

/// Makes a writer `Send` but not `Sync`.
type OneWriter<T> = PhantomData<(fn(T), std::cell::Cell<()>)>;

/// The search's end of a spool: pushes never wait for the client. One
/// thread pushes (it is not `Sync`): file writes rely on a single writer.
pub struct SpoolWriter<T> {
    shared: Arc<Shared<T>>,
    /// Whether anything was pushed.
    pushed: std::cell::Cell<bool>,
    _one_writer: OneWriter<T>,
}

impl<T: Message> SpoolWriter<T> {
    /// Whether anything was ever pushed (kept or refused).
    pub fn pushed_any(&self) -> bool {
        self.pushed.get()
    }

    /// Keeps `item` for the client, in memory or in the spill file; fails
    /// once the spool is stopped (its client gone, or a disk budget
    /// spent), and the search should stop.
    pub fn push(&self, item: T) -> Result<(), Stop> {
        self.pushed.set(true);
        let sh = &self.shared;
        let len = item.encoded_len();
        let (file, at) = {
            let mut s = sh.lock();
            if let Some(stop) = &s.stop {
                return Err(stop.clone());
            }
            if s.unread == 0 && s.end > 0 {
                // The reader has caught up: the file starts again, empty.
                if let Some(f) = &s.file
                    && let Err(e) = f.set_len(0)
                {
                    tracing::warn!(error = %e, "result spool: cannot truncate a spill file");
                    return Err(sh.stop(&mut s, Stop::Broken(format!("cannot truncate: {e}"))));
                }
                sh.spools.disk.fetch_sub(s.end, Ordering::AcqRel);
                s.end = 0;
                s.read_at = 0;
            }
            if s.unread == 0 && s.memory_bytes + len <= SEARCH_MEMORY && sh.spools.take_memory(len)
            {
                s.memory_bytes += len;
                s.memory.push_back((item, len));
                drop(s);
                sh.notify.notify_one();
                return Ok(());
            }
            let framed = (prost::length_delimiter_len(len) + len) as u64;
            if s.end + framed > sh.spools.search_disk_cap {
                return Err(sh.stop(&mut s, Stop::TooLarge(sh.spools.search_disk_cap)));
            }
            if !sh.spools.take_disk(framed) {
                return Err(sh.stop(&mut s, Stop::Full(sh.spools.disk_cap)));
            }
            let file = match &s.file {
                Some(f) => f.clone(),
                None => match sh.spools.spill_file() {
                    Ok(f) => s.file.insert(Arc::new(f)).clone(),
                    Err(e) => {
                        sh.spools.disk.fetch_sub(framed, Ordering::AcqRel);
                        tracing::warn!(error = %e, "result spool: cannot create a spill file");
                        let why = Stop::Broken(format!("cannot create a spill file: {e}"));
                        return Err(sh.stop(&mut s, why));
                    }
                },
            };
            let at = s.end;
            s.end += framed;
            (file, at)
        };
        // Written outside the lock (only this writer writes, past every
        // chunk the reader may be reading), then counted as unread.
        let framed = item.encode_length_delimited_to_vec();
        let written = file.write_all_at(&framed, at);
        let mut s = sh.lock();
        if let Err(e) = written {
            tracing::warn!(error = %e, "result spool: cannot write the spill file");
            return Err(sh.stop(&mut s, Stop::Broken(format!("cannot write: {e}"))));
        }
        s.unread += 1;
        drop(s);
        sh.notify.notify_one();
        Ok(())
    }
}

impl<T> Drop for SpoolWriter<T> {
    fn drop(&mut self) {
        self.shared.lock().finished = true;
        self.shared.notify.notify_one();
    }
}

/// The sender's end of a spool.
pub struct SpoolReader<T> {
    shared: Arc<Shared<T>>,
    _item: PhantomData<fn() -> T>,
}

impl<T: Message + Default> SpoolReader<T> {
    /// The next chunk in push order, waiting (asynchronously) for the
    /// search to push one; `None` once the search has finished and every
    /// chunk has been taken, or the spool is stopped (a spill file that
    /// cannot be read stops it).
    pub async fn next(&mut self) -> Option<T> {
        loop {
            let notified = self.shared.notify.notified();
            let (file, at, n) = match self.take() {
                Take::Item(item) => return Some(item),
                Take::End => return None,
                Take::Wait => {
                    notified.await;
                    continue;
                }
                Take::File(file, at, n) => (file, at, n),
            };
            let read = tokio::task::spawn_blocking(move || read_chunks(&file, at, n))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            let (items, end) = match read {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(error = %e, "result spool: cannot read the spill file");
                    self.stop(Stop::Broken(format!("cannot read the spill file: {e}")));
                    return None;
                }
            };
            let count = items.len();
            let mut decoded = Vec::with_capacity(count);
            for bytes in &items {
                match self.decode(bytes) {
                    Some(item) => decoded.push((item, bytes.len())),
                    None => return None,
                }
            }
            let mut s = self.shared.lock();
            s.read_at = end;
            s.unread -= count;
            // Handed out one by one: the rest wait at the front of the
            // queue (outside the budget's check, at most FILE_BATCH chunks).
            let mut decoded = decoded.into_iter();
            let first = decoded.next();
            for (item, len) in decoded.rev() {
                s.memory_bytes += len;
                self.shared.spools.memory.fetch_add(len, Ordering::AcqRel);
                s.memory.push_front((item, len));
            }
            drop(s);
            return first.map(|(item, _)| item);
        }
    }

    /// A chunk decoded; one that does not decode (a damaged spill file)
    /// stops the spool.
    fn decode(&self, bytes: &[u8]) -> Option<T> {
        match T::decode(bytes) {
            Ok(item) => Some(item),
            Err(e) => {
                tracing::warn!(error = %e, "result spool: a chunk does not decode");
                self.stop(Stop::Broken(format!("a chunk does not decode: {e}")));
                None
            }
        }
    }

    /// What the reader may do now.
    fn take(&self) -> Take<T> {
        let mut s = self.shared.lock();
        if matches!(s.stop, Some(Stop::Gone(_) | Stop::Broken(_))) {
            return Take::End;
        }
        if let Some((item, len)) = s.memory.pop_front() {
            s.memory_bytes -= len;
            self.shared.spools.memory.fetch_sub(len, Ordering::AcqRel);
            return Take::Item(item);
        }
        if s.unread == 0 {
            return if s.finished || s.stop.is_some() {
                Take::End
            } else {
                Take::Wait
            };
        }
        match s.file.clone() {
            Some(file) => Take::File(file, s.read_at, s.unread.min(FILE_BATCH)),
            None => Take::End,
        }
    }

    /// Stops the spool: the search's next push fails with `why` (unless it
    /// stopped already).
    pub fn stop(&self, why: Stop) {
        let mut s = self.shared.lock();
        s.stop.get_or_insert(why);
    }

    /// Why the spool stopped, if it did.
    pub fn stopped(&self) -> Option<Stop> {
        self.shared.lock().stop.clone()
    }
}

impl<T> Drop for SpoolReader<T> {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.stop.get_or_insert(Stop::Gone(Gone::Closed));
    }
}

/// What a spool's reader may do now.
enum Take<T> {
    /// Send this chunk.
    Item(T),
    /// Wait for the search to push or finish.
    Wait,
    /// Nothing more will come.
    End,
    /// Read up to `n` chunks from the file at this offset.
    File(Arc<File>, u64, usize),
}

/// Up to `n` length-delimited chunks from `file` at `at`, and where they end.
fn read_chunks(file: &File, mut at: u64, n: usize) -> std::io::Result<(Vec<Vec<u8>>, u64)> {
    let mut items = Vec::with_capacity(n);
    let mut head = [0u8; 10];
    for _ in 0..n {
        // The length prefix is at most 10 bytes; the file may end sooner.
        let got = read_some_at(file, &mut head, at)?;
        let mut prefix = &head[..got];
        let len = prost::decode_length_delimiter(&mut prefix)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
        let skip = prost::length_delimiter_len(len) as u64;
        let mut body = vec![0u8; len];
        file.read_exact_at(&mut body, at + skip)?;
        items.push(body);
        at += skip + len as u64;
    }
    Ok((items, at))
}

/// Fills as much of `buf` as the file holds from `at`.
fn read_some_at(file: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], at + got as u64)? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nadc_proto::pb;

    /// A chunk of `n` bytes of padding, numbered `i`.
    fn item(i: u64, n: usize) -> pb::AuditRecord {
        pb::AuditRecord {
            seq: i,
            user: "x".repeat(n),
            ..Default::default()
        }
    }

    fn spools(dir: &tempfile::TempDir, memory: usize, disk: u64) -> Spools {
        Spools::new(dir.path().join("spool"), memory, disk, u64::MAX).unwrap()
    }

    async fn drain(r: &mut SpoolReader<pb::AuditRecord>) -> Vec<u64> {
        let mut got = Vec::new();
        while let Some(i) = r.next().await {
            got.push(i.seq);
        }
        got
    }

    #[tokio::test]
    async fn chunks_come_out_in_order_through_memory_the_file_and_memory_again() {
        let dir = tempfile::tempdir().unwrap();
        // Room in memory for about three chunks: the rest spill.
        let sp = spools(&dir, 3_500, 1 << 30);
        let (w, mut r) = sp.open::<pb::AuditRecord>();
        for i in 0..50 {
            w.push(item(i, 1_000)).unwrap();
        }
        assert!(sp.disk_used() > 0, "chunks past the memory budget spill");
        assert!(sp.memory_used() <= 3_500);
        // Read a few (the file is not yet caught up), push more, read all.
        let mut got = Vec::new();
        for _ in 0..20 {
            got.push(r.next().await.unwrap().seq);
        }
        for i in 50..60 {
            w.push(item(i, 1_000)).unwrap();
        }
        while got.len() < 60 {
            got.push(r.next().await.unwrap().seq);
        }
        // Caught up: the file starts again, truncated, and memory is used
        // again.
        w.push(item(60, 10)).unwrap();
        assert_eq!(sp.disk_used(), 0, "an emptied file is given back");
        let file = w.shared.lock().file.clone().unwrap();
        assert_eq!(file.metadata().unwrap().len(), 0, "and truncated");
        w.push(item(61, 10)).unwrap();
        drop(w);
        got.extend(drain(&mut r).await);
        assert_eq!(got, (0..62).collect::<Vec<_>>());
        drop(r);
        assert_eq!((sp.memory_used(), sp.disk_used()), (0, 0));
        // The spill file was unlinked when made: nothing is left on disk.
        let left = std::fs::read_dir(dir.path().join("spool")).unwrap().count();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn a_full_disk_budget_stops_the_search_and_what_was_kept_still_arrives() {
        let dir = tempfile::tempdir().unwrap();
        let sp = spools(&dir, 0, 10_000);
        let (w, mut r) = sp.open::<pb::AuditRecord>();
        let pushed = (0..100)
            .take_while(|&i| w.push(item(i, 1_000)).is_ok())
            .count() as u64;
        assert_eq!(pushed, 9, "nine framed chunks of ~1 KB fit in 10,000 bytes");
        assert_eq!(w.push(item(99, 1)), Err(Stop::Full(10_000)));
        drop(w);
        assert_eq!(drain(&mut r).await, (0..pushed).collect::<Vec<_>>());
        assert_eq!(r.stopped(), Some(Stop::Full(10_000)));
        // Another search's budget is its own once this one ends.
        drop(r);
        let (w2, _r2) = sp.open::<pb::AuditRecord>();
        assert!(w2.push(item(0, 1_000)).is_ok());
    }

    #[tokio::test]
    async fn one_search_may_not_take_more_than_its_share_of_the_disk() {
        let dir = tempfile::tempdir().unwrap();
        let sp = Spools::new(dir.path().join("spool"), 0, 1 << 30, 5_000).unwrap();
        let (w, mut r) = sp.open::<pb::AuditRecord>();
        let pushed = (0..100)
            .take_while(|&i| w.push(item(i, 1_000)).is_ok())
            .count() as u64;
        assert_eq!(pushed, 4);
        assert_eq!(w.push(item(99, 1)), Err(Stop::TooLarge(5_000)));
        // Another search has its own share.
        let (w2, _r2) = sp.open::<pb::AuditRecord>();
        assert!(w2.push(item(0, 1_000)).is_ok());
        drop(w);
        assert_eq!(drain(&mut r).await, (0..pushed).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_reader_that_goes_stops_the_search_at_its_next_push() {
        let dir = tempfile::tempdir().unwrap();
        let sp = spools(&dir, 1 << 20, 1 << 30);
        let (w, r) = sp.open::<pb::AuditRecord>();
        w.push(item(0, 10)).unwrap();
        r.stop(Stop::Gone(Gone::Stalled(std::time::Duration::from_secs(3))));
        assert_eq!(
            w.push(item(1, 10)),
            Err(Stop::Gone(Gone::Stalled(std::time::Duration::from_secs(3))))
        );
        drop((w, r));
        let (w, r) = sp.open::<pb::AuditRecord>();
        drop(r);
        assert_eq!(w.push(item(0, 10)), Err(Stop::Gone(Gone::Closed)));
        drop(w);
        assert_eq!((sp.memory_used(), sp.disk_used()), (0, 0));
    }

    #[tokio::test]
    async fn the_node_memory_budget_is_shared_by_all_spools() {
        let dir = tempfile::tempdir().unwrap();
        let sp = spools(&dir, 5_000, 1 << 30);
        let (a, _ra) = sp.open::<pb::AuditRecord>();
        let (b, _rb) = sp.open::<pb::AuditRecord>();
        for i in 0..4 {
            a.push(item(i, 1_000)).unwrap();
        }
        assert_eq!(sp.disk_used(), 0);
        // `a` holds most of the budget: `b`'s second chunk spills.
        b.push(item(0, 900)).unwrap();
        assert_eq!(sp.disk_used(), 0);
        b.push(item(1, 900)).unwrap();
        assert!(sp.disk_used() > 0);
    }
}
