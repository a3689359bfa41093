//! Search workers: the blocking threads searches may hold, so that ingest
//! and live alerting keep theirs whatever searchers do.
//!
//! A search (local rows, an analysis, an audit query) reads the store on a
//! blocking thread and pushes its results into a [spool](crate::spool); an
//! async task sends them on at the client's pace. Tokio's blocking pool is
//! shared with ingest (validation, alerting, the store's append), so no
//! search holds a thread while its client is slow. Three bounds:
//!
//! - **Workers**: at most `search_workers` searches compute at once,
//!   node-wide. A search waits (asynchronously, holding no thread) at most
//!   `search_queue_ms` for a worker, then is refused with
//!   `RESOURCE_EXHAUSTED` and a retry hint. A worker is held only while its
//!   search computes, never while the client reads.
//! - **Stalled readers**: each send of a result chunk waits at most
//!   `stalled_reader_s` for room; a client that reads nothing for that
//!   long is cut off, its search ends (audited as failed) and its spool is
//!   freed.
//! - **Per user**: at most `searches_per_user` searches and alert watches
//!   open at once for one user (force and name, the relayed user for a
//!   peer's relay), from admission until the client has its last chunk;
//!   more are refused at once with `RESOURCE_EXHAUSTED` naming the cap.
//!   An alert watch holds no worker (live alerts must not wait behind
//!   searches) but counts here.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::error::ServiceError;
use crate::limits::{LimitsConfig, overloaded};
use crate::spool::{SpoolWriter, Spools, Stop};

/// The node's search workers and open searches per user. Cheap to clone.
#[derive(Clone)]
pub struct SearchWorkers {
    permits: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
    stalled: Duration,
    per_user: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
    spools: Spools,
}

/// A search's worker and its place in its user's count; dropping it frees
/// both. [`Worker::stream`] runs the search and sends its results.
pub struct Worker {
    permit: OwnedSemaphorePermit,
    place: Place,
    stalled: Duration,
    spools: Spools,
}

/// One open search or watch of one user: dropping it frees the place.
pub struct Place {
    key: String,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Why a result could not be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// The client went away (cancelled, or its connection closed).
    Closed,
    /// The client read nothing for this long.
    Stalled(Duration),
}

impl std::fmt::Display for Gone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gone::Closed => f.write_str("the client went away before the end"),
            Gone::Stalled(d) => write!(
                f,
                "the client read nothing for {} s (limits.stalled_reader_s): cut off",
                d.as_secs()
            ),
        }
    }
}

impl SearchWorkers {
    /// Workers under `cfg`, whose searches spool their results in `spools`.
    pub fn new(cfg: &LimitsConfig, spools: Spools) -> Self {
        Self {
            spools,
            permits: Arc::new(Semaphore::new(cfg.search_workers)),
            capacity: cfg.search_workers,
            wait: Duration::from_millis(cfg.search_queue_ms),
            stalled: Duration::from_secs(cfg.stalled_reader_s),
            per_user: cfg.searches_per_user,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A worker for a search by `user` (`FORCE/name`), or a refusal: at
    /// once if the user has `searches_per_user` searches open, else after
    /// waiting `search_queue_ms` for one of the `search_workers`.
    pub async fn acquire(&self, user: &str) -> Result<Worker, Status> {
        let slot = self.place(user)?;
        let permit = match tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
        {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(Status::unavailable("the node is shutting down")),
            Err(_) => {
                return Err(overloaded(
                    format!(
                        "node busy: all {} search workers (limits.search_workers) busy for {} ms",
                        self.capacity,
                        self.wait.as_millis()
                    ),
                    self.wait,
                ));
            }
        };
        Ok(Worker {
            permit,
            place: slot,
            stalled: self.stalled,
            spools: self.spools.clone(),
        })
    }

    /// A place among `user`'s open searches and watches, or a refusal
    /// naming the cap when all `searches_per_user` are taken.
    pub fn place(&self, user: &str) -> Result<Place, Status> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(user.to_string()).or_default();
        if *n >= self.per_user {
            return Err(Status::resource_exhausted(format!(
                "{user} already has {} searches or watches open (limits.searches_per_user is \
                 {}): finish or cancel one first",
                *n, self.per_user
            )));
        }
        *n += 1;
        Ok(Place {
            key: user.to_string(),
            open: self.open.clone(),
        })
    }

    /// How long a send waits for a client that reads nothing.
    pub fn stalled_reader(&self) -> Duration {
        self.stalled
    }

    /// Workers free now (for tests and metrics).
    pub fn free(&self) -> usize {
        self.permits.available_permits()
    }
}

impl Worker {
    /// Runs `produce` on a blocking thread under this worker, sending what
    /// it pushes to the client as the client reads; the worker is freed as
    /// soon as `produce` returns, whatever the client does. Then `finish`
    /// (on a blocking thread: it may write the audit) is given what
    /// `produce` returned, why the spool stopped early if it did (the
    /// client's going first), and how many pushed items were sent; it
    /// returns the last items to send (none reach a client that has gone).
    /// The user's place is freed before the very last item goes, so a
    /// client that has read a search to its end may start another at once.
    pub fn stream<T, D>(
        self,
        produce: impl FnOnce(&SpoolWriter<T>) -> D + Send + 'static,
        finish: impl FnOnce(D, Option<Stop>, usize) -> Vec<Result<T, Status>> + Send + 'static,
    ) -> ReceiverStream<Result<T, Status>>
    where
        T: Message + Default + Send + 'static,
        D: Send + 'static,
    {
        let Worker {
            permit,
            place,
            stalled,
            spools,
        } = self;
        let (writer, mut reader) = spools.open::<T>();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            // Locals drop in reverse: the user's place is freed before the
            // client sees its stream end.
            let tx = tx;
            let mut place = Some(place);
            // A search that pushed nothing (its answer fits the items
            // `finish` returns) is finished on the same blocking thread,
            // once its worker is freed: nothing can have stopped a spool
            // nothing was pushed to, and none was sent. That saves a
            // thread hop on every small search.
            let producer = tokio::task::spawn_blocking(move || {
                let data = produce(&writer);
                drop(permit);
                if writer.pushed_any() {
                    Produced::Later(data, finish)
                } else {
                    Produced::Done(finish(data, None, 0))
                }
            });
            let (mut sent, mut cut) = (0, None);
            while let Some(item) = reader.next().await {
                if let Err(g) = send_within(&tx, Ok(item), stalled).await {
                    reader.stop(Stop::Gone(g));
                    cut = Some(g);
                    break;
                }
                sent += 1;
            }
            let stopped = cut.map(Stop::Gone).or_else(|| reader.stopped());
            drop(reader);
            let failed = |e: tokio::task::JoinError| {
                Status::from(ServiceError::internal(format!("search task failed: {e}")))
            };
            let tail = match producer.await {
                Ok(Produced::Done(tail)) => tail,
                Ok(Produced::Later(data, finish)) => {
                    match tokio::task::spawn_blocking(move || finish(data, stopped, sent)).await {
                        Ok(tail) => tail,
                        Err(e) => vec![Err(failed(e))],
                    }
                }
                Err(e) => vec![Err(failed(e))],
            };
            if cut.is_some() {
                return;
            }
            let last = tail.len().saturating_sub(1);
            for (i, item) in tail.into_iter().enumerate() {
                if i == last {
                    place = None;
                }
                if send_within(&tx, item, stalled).await.is_err() {
                    return;
                }
            }
            drop(place);
        });
        ReceiverStream::new(rx)
    }
}

/// What a search's blocking half ends with: its last items, or what
/// `finish` needs once the pushed items have gone.
enum Produced<T, D, F> {
    Done(Vec<Result<T, Status>>),
    Later(D, F),
}

/// Sends `item`, waiting at most `stalled` for room.
pub async fn send_within<T>(tx: &mpsc::Sender<T>, item: T, stalled: Duration) -> Result<(), Gone> {
    match tokio::time::timeout(stalled, tx.send(item)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Gone::Closed),
        Err(_) => Err(Gone::Stalled(stalled)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nadc_proto::pb;

    fn cfg(workers: usize, per_user: usize) -> LimitsConfig {
        LimitsConfig {
            search_workers: workers,
            searches_per_user: per_user,
            search_queue_ms: 20,
            stalled_reader_s: 1,
            ..LimitsConfig::default()
        }
    }

    fn workers(cfg: &LimitsConfig, dir: &tempfile::TempDir) -> SearchWorkers {
        let spools = Spools::new(dir.path().join("spool"), 1 << 20, 1 << 30, 1 << 30).unwrap();
        SearchWorkers::new(cfg, spools)
    }

    #[tokio::test]
    async fn a_user_over_the_cap_is_refused_by_name_and_a_freed_slot_admits() {
        let dir = tempfile::tempdir().unwrap();
        let w = workers(&cfg(8, 2), &dir);
        let a = w.acquire("AVON/alice").await.unwrap();
        let _b = w.acquire("AVON/alice").await.unwrap();
        let e = w.acquire("AVON/alice").await.err().unwrap();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("searches_per_user"), "{}", e.message());
        // Another user has their own count.
        let _k = w.acquire("KENT/kim").await.unwrap();
        drop(a);
        assert!(w.acquire("AVON/alice").await.is_ok());
    }

    #[tokio::test]
    async fn no_free_worker_within_the_wait_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let w = workers(&cfg(1, 8), &dir);
        let held = w.acquire("AVON/alice").await.unwrap();
        let e = w.acquire("KENT/kim").await.err().unwrap();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("search_workers"), "{}", e.message());
        assert!(crate::limits::retry_after(&e).is_some());
        drop(held);
        assert_eq!(w.free(), 1);
    }

    fn rows(n: usize) -> pb::SearchChunk {
        pb::SearchChunk {
            chunk: Some(pb::search_chunk::Chunk::Rows(pb::RowBatch {
                rows: (0..n)
                    .map(|i| pb::ReadRow {
                        vrm: format!("R{i}"),
                        ..Default::default()
                    })
                    .collect(),
            })),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_search_nobody_reads_frees_its_worker_once_computed_and_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let w = workers(
            &LimitsConfig {
                search_queue_ms: 30_000,
                ..cfg(1, 1)
            },
            &dir,
        );
        let worker = w.acquire("AVON/alice").await.unwrap();
        let (done, finished) = tokio::sync::oneshot::channel();
        let mut rx = worker.stream(
            |spool| {
                (0..200)
                    .take_while(|_| spool.push(rows(100)).is_ok())
                    .count()
            },
            move |pushed, stopped, _sent| {
                let _ = done.send((pushed, stopped));
                vec![Ok(rows(1))]
            },
        );
        // Nothing is read, yet the one worker is free once the search has
        // computed: another user's search gets it.
        let other = w.acquire("KENT/kim").await.expect("the worker is freed");
        drop(other);
        // The unread search is cut off after the bound, having pushed all.
        let (pushed, stopped) = finished.await.unwrap();
        assert_eq!(pushed, 200);
        assert_eq!(
            stopped,
            Some(Stop::Gone(Gone::Stalled(Duration::from_secs(1))))
        );
        // What was sent before the cut-off arrives; the last item never does.
        let mut got = 0;
        while let Some(item) = futures::StreamExt::next(&mut rx).await {
            let Some(pb::search_chunk::Chunk::Rows(r)) = item.unwrap().chunk else {
                panic!("only rows were sent")
            };
            assert_eq!(r.rows.len(), 100, "the summary never goes");
            got += 1;
        }
        assert!(got < 200, "{got} chunks");
        // Its place and spool are freed with it.
        assert!(w.acquire("AVON/alice").await.is_ok());
        assert_eq!((w.spools.memory_used(), w.spools.disk_used()), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_search_read_to_its_end_arrives_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let w = workers(&cfg(1, 1), &dir);
        let worker = w.acquire("AVON/alice").await.unwrap();
        let rx = worker.stream(
            |spool| {
                for n in 1..=300 {
                    spool.push(rows(n)).unwrap();
                }
            },
            |(), stopped, sent| {
                assert_eq!((stopped, sent), (None, 300));
                vec![Ok(rows(1000))]
            },
        );
        let sizes: Vec<usize> = futures::StreamExt::collect::<Vec<_>>(rx)
            .await
            .into_iter()
            .map(|c| match c.unwrap().chunk {
                Some(pb::search_chunk::Chunk::Rows(r)) => r.rows.len(),
                _ => panic!("only rows were sent"),
            })
            .collect();
        let expected: Vec<usize> = (1..=300).chain([1000]).collect();
        assert_eq!(sizes, expected);
        assert_eq!((w.spools.memory_used(), w.spools.disk_used()), (0, 0));
    }
}
