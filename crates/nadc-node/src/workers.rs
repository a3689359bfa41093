//! Search workers: the blocking threads searches may hold, so that ingest
//! and live alerting keep theirs whatever searchers do.
//!
//! A search (local rows, an analysis, an alert history replay, an audit
//! query) reads the store on a blocking thread and hands its results to the
//! client through a small channel. Tokio's blocking pool is shared with
//! ingest (validation, alerting, the store's append), so a search that
//! waited on a client that never reads would hold a thread ingest needs.
//! Three bounds keep that from happening:
//!
//! - **Workers**: at most `search_workers` searches run at once, node-wide.
//!   A search waits (asynchronously, holding no thread) at most
//!   `search_queue_ms` for a worker, then is refused with
//!   `RESOURCE_EXHAUSTED` and a retry hint.
//! - **Stalled readers**: each send of a result chunk waits at most
//!   `stalled_reader_s` for room; a client that reads nothing for that
//!   long is cut off, its search ends (audited as failed) and its worker
//!   is freed.
//! - **Per user**: at most `searches_per_user` searches and alert watches
//!   open at once for one user (force and name, the relayed user for a
//!   peer's relay); more are refused at once with `RESOURCE_EXHAUSTED`
//!   naming the cap. An alert watch holds no worker (live alerts must not
//!   wait behind searches) but counts here, so one user's stalled watches
//!   cannot hold many blocking threads either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::Status;

use crate::limits::{LimitsConfig, overloaded};

/// The node's search workers and open searches per user. Cheap to clone.
#[derive(Clone)]
pub struct SearchWorkers {
    permits: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
    stalled: Duration,
    per_user: usize,
    open: Arc<Mutex<HashMap<String, usize>>>,
}

/// A search's worker and its place in its user's count; dropping it frees
/// both. Sends the search's results with [`Worker::send`].
pub struct Worker {
    _permit: OwnedSemaphorePermit,
    user: Option<Place>,
    stalled: Duration,
    handle: Handle,
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
    /// Workers under `cfg`.
    pub fn new(cfg: &LimitsConfig) -> Self {
        Self {
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
            _permit: permit,
            user: Some(slot),
            stalled: self.stalled,
            handle: Handle::current(),
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
    /// Sends `item` to the client from a blocking thread, waiting at most
    /// `stalled_reader_s` for room.
    pub fn send<T>(&self, tx: &mpsc::Sender<T>, item: T) -> Result<(), Gone> {
        send_within(&self.handle, tx, item, self.stalled)
    }

    /// Frees the search's place in its user's count (the worker is kept):
    /// called once nothing but its last chunk is left to send, so a client
    /// that has read a search to its end may start another at once.
    pub fn release_user(&mut self) {
        self.user = None;
    }
}

/// Sends `item` from a blocking thread, waiting at most `stalled` for room.
pub fn send_within<T>(
    handle: &Handle,
    tx: &mpsc::Sender<T>,
    item: T,
    stalled: Duration,
) -> Result<(), Gone> {
    match handle.block_on(tokio::time::timeout(stalled, tx.send(item))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err(Gone::Closed),
        Err(_) => Err(Gone::Stalled(stalled)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(workers: usize, per_user: usize) -> LimitsConfig {
        LimitsConfig {
            search_workers: workers,
            searches_per_user: per_user,
            search_queue_ms: 20,
            stalled_reader_s: 1,
            ..LimitsConfig::default()
        }
    }

    #[tokio::test]
    async fn a_user_over_the_cap_is_refused_by_name_and_a_freed_slot_admits() {
        let w = SearchWorkers::new(&cfg(8, 2));
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
        let w = SearchWorkers::new(&cfg(1, 8));
        let held = w.acquire("AVON/alice").await.unwrap();
        let e = w.acquire("KENT/kim").await.err().unwrap();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("search_workers"), "{}", e.message());
        assert!(crate::limits::retry_after(&e).is_some());
        drop(held);
        assert_eq!(w.free(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_nobody_reads_gives_up_after_the_bound() {
        let w = SearchWorkers::new(&cfg(1, 1));
        let worker = w.acquire("AVON/alice").await.unwrap();
        let (tx, mut rx) = mpsc::channel::<u32>(1);
        let r = tokio::task::spawn_blocking(move || {
            let first = worker.send(&tx, 1);
            let second = worker.send(&tx, 2);
            (first, second)
        })
        .await
        .unwrap();
        assert_eq!(r, (Ok(()), Err(Gone::Stalled(Duration::from_secs(1)))));
        assert_eq!(rx.recv().await, Some(1));
        // The worker went with the blocking task.
        assert_eq!(w.free(), 1);
    }
}
