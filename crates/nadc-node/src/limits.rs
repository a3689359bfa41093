//! Overload protection: what a node admits, and how it says "not now".
//!
//! A node under more load than it can write keeps its memory bounded and
//! keeps serving searches:
//!
//! - **Streams** are bounded by the transport: at most
//!   `max_concurrent_streams` HTTP/2 streams per connection (more are
//!   refused by HTTP/2, which clients see as a retryable `UNAVAILABLE`),
//!   and at most `max_requests_per_connection` requests in progress on one
//!   connection; more are shed at once with `RESOURCE_EXHAUSTED` (without
//!   a hint: the client backs off on its own). Shedding, not queueing: a
//!   request left waiting unread would hold its body in the connection's
//!   HTTP/2 flow-control window and could starve the requests being
//!   served on the same connection (seen in the overload test).
//! - **Batches in progress** are bounded by [`Admission`]: a batch waits up
//!   to `queue_wait_ms` for one of `ingest_concurrency` slots, then is
//!   refused with `RESOURCE_EXHAUSTED` and a retry hint. A push stream
//!   reads its next batch only once it holds a slot, so a fast BOF is
//!   slowed by HTTP/2 flow control instead of filling the node's memory.
//!   Searches never wait for these slots.
//! - **Per-force rates**: a token bucket per owning force (reads per
//!   second, with a burst). A batch is admitted while the bucket is not
//!   empty (it may go into debt, so a batch larger than the burst is never
//!   starved); otherwise it is refused with the time until it would be
//!   admitted.
//!
//! Every refusal carries the metadata `retry-after-ms`, which the BOF
//! client honours (with jitter) before retrying. Nothing refused was
//! stored, and nothing stored is refused: admission happens before
//! validation, so a retry is always safe (read ids de-duplicate anyway).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nadc_core::ForceId;
use serde::Deserialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::Status;

pub use nadc_proto::RETRY_AFTER_MS;

/// Limits on what a node admits. `[limits]` in the node's configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest gRPC message accepted or sent, bytes.
    pub max_message_bytes: usize,
    /// HTTP/2 streams (calls) open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Requests in progress on one connection; more are shed at once.
    pub max_requests_per_connection: usize,
    /// Batches validated and written at once, across all BOFs.
    pub ingest_concurrency: usize,
    /// How long a batch may wait for a slot before it is refused, ms.
    pub queue_wait_ms: u64,
    /// Reads per second one force may push (0: no limit).
    pub per_force_reads_per_s: u64,
    /// Reads a force may push at once above its rate (the bucket's size).
    pub per_force_burst: u64,
    /// Searches running at once, node-wide (each holds a blocking thread;
    /// ingest and alerting keep the rest). See [`crate::workers`].
    pub search_workers: usize,
    /// How long a search may wait for a worker before it is refused, ms.
    pub search_queue_ms: u64,
    /// How long a search waits for its client to read before it is cut
    /// off and its worker freed, s.
    pub stalled_reader_s: u64,
    /// Searches one user (force and name) may have open at once.
    pub searches_per_user: usize,
    /// Bytes of search results all searches together may keep in memory
    /// for clients still reading them; more go to spill files. See
    /// [`crate::spool`].
    pub spool_memory_bytes: usize,
    /// Bytes of search results all searches together may keep in spill
    /// files (`<data_dir>/spool/`); a search that needs more ends, told so.
    pub spool_disk_bytes: u64,
    /// How long a new connection may take to complete its TLS handshake, ms.
    pub handshake_timeout_ms: u64,
    /// Interval of HTTP/2 keepalive pings to each client, s.
    pub keepalive_interval_s: u64,
    /// How long a ping may go unanswered before the connection is closed, s.
    pub keepalive_timeout_s: u64,
    /// Longest life of a connection, s: then it is shut down gracefully (a
    /// connection with no stream open closes at once; open streams finish,
    /// no new one starts; clients reconnect), so idle connections do not
    /// accumulate.
    pub max_connection_age_s: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 << 20,
            max_concurrent_streams: 256,
            max_requests_per_connection: 256,
            ingest_concurrency: 16,
            queue_wait_ms: 2_000,
            per_force_reads_per_s: 0,
            per_force_burst: 100_000,
            search_workers: 16,
            search_queue_ms: 2_000,
            stalled_reader_s: 30,
            searches_per_user: 8,
            spool_memory_bytes: 256 << 20,
            spool_disk_bytes: 16 << 30,
            handshake_timeout_ms: 10_000,
            keepalive_interval_s: 60,
            keepalive_timeout_s: 20,
            max_connection_age_s: 1_800,
        }
    }
}

impl LimitsConfig {
    /// Checks ranges; the message names the offending key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("max_message_bytes", self.max_message_bytes as u64),
            (
                "max_concurrent_streams",
                u64::from(self.max_concurrent_streams),
            ),
            (
                "max_requests_per_connection",
                self.max_requests_per_connection as u64,
            ),
            ("ingest_concurrency", self.ingest_concurrency as u64),
            ("per_force_burst", self.per_force_burst),
            ("search_workers", self.search_workers as u64),
            ("stalled_reader_s", self.stalled_reader_s),
            ("searches_per_user", self.searches_per_user as u64),
            ("spool_disk_bytes", self.spool_disk_bytes),
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("keepalive_interval_s", self.keepalive_interval_s),
            ("keepalive_timeout_s", self.keepalive_timeout_s),
            ("max_connection_age_s", self.max_connection_age_s),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(format!("limits.{key} must be above 0"));
            }
        }
        if self.max_message_bytes < 64 << 10 {
            return Err(format!(
                "limits.max_message_bytes {} must be at least 65536",
                self.max_message_bytes
            ));
        }
        // Searches must leave ingest and alerting most of tokio's blocking
        // pool (512 threads), whatever searchers do.
        if self.search_workers > 256 {
            return Err(format!(
                "limits.search_workers {} is too many: at most 256 (half the blocking pool, \
                 so ingest and alerting keep theirs)",
                self.search_workers
            ));
        }
        let bounded = [
            ("search_queue_ms", self.search_queue_ms, 60_000),
            ("stalled_reader_s", self.stalled_reader_s, 3_600),
            ("handshake_timeout_ms", self.handshake_timeout_ms, 120_000),
            ("keepalive_interval_s", self.keepalive_interval_s, 3_600),
            ("keepalive_timeout_s", self.keepalive_timeout_s, 600),
            ("max_connection_age_s", self.max_connection_age_s, 86_400),
        ];
        for (key, v, max) in bounded {
            if v > max {
                return Err(format!("limits.{key} {v} is too long: at most {max}"));
            }
        }
        Ok(())
    }
}

/// A refusal that tells the caller when to come back.
pub fn overloaded(message: String, retry_after: Duration) -> Status {
    let ms = retry_after.as_millis().max(1) as u64;
    let mut s = Status::resource_exhausted(format!("{message}; retry after {ms} ms"));
    if let Ok(v) = ms.to_string().parse() {
        s.metadata_mut().insert(RETRY_AFTER_MS, v);
    }
    s
}

pub use nadc_bof::retry_after;

/// Admission of pushed batches: slots for batches in progress and a rate
/// per force. Cheap to clone.
#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    capacity: usize,
    wait: Duration,
    rate: Option<Arc<Rates>>,
}

/// A batch's place in the node; dropping it frees the slot.
pub struct Admitted(#[allow(dead_code)] OwnedSemaphorePermit);

struct Rates {
    per_s: f64,
    burst: f64,
    buckets: Mutex<HashMap<ForceId, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Admission {
    /// Admission under `cfg`.
    pub fn new(cfg: &LimitsConfig) -> Self {
        let rate = (cfg.per_force_reads_per_s > 0).then(|| {
            Arc::new(Rates {
                per_s: cfg.per_force_reads_per_s as f64,
                burst: cfg.per_force_burst as f64,
                buckets: Mutex::new(HashMap::new()),
            })
        });
        Self {
            slots: Arc::new(Semaphore::new(cfg.ingest_concurrency)),
            capacity: cfg.ingest_concurrency,
            wait: Duration::from_millis(cfg.queue_wait_ms),
            rate,
        }
    }

    /// Admits a unary batch of `reads` reads from `force`, or refuses it
    /// with `RESOURCE_EXHAUSTED` and a retry hint: the force's rate first
    /// (a refused batch costs no slot), then a slot, waited for at most
    /// `queue_wait_ms`.
    pub async fn admit(&self, force: &ForceId, reads: usize) -> Result<Admitted, Status> {
        self.charge(force, reads)?;
        match tokio::time::timeout(self.wait, self.slot()).await {
            Ok(slot) => slot,
            Err(_) => Err(overloaded(
                format!(
                    "node overloaded: all {} ingest slots busy for {} ms, batch not stored",
                    self.capacity,
                    self.wait.as_millis()
                ),
                self.wait / 2,
            )),
        }
    }

    /// Waits for a slot as long as it takes. A push stream takes its slot
    /// before reading its next batch, so a waiting stream holds no batch.
    pub async fn slot(&self) -> Result<Admitted, Status> {
        self.slots
            .clone()
            .acquire_owned()
            .await
            .map(Admitted)
            .map_err(|_| Status::unavailable("the node is shutting down"))
    }

    /// Charges `reads` to `force`'s rate, or refuses with the time until
    /// the force may push again.
    pub fn charge(&self, force: &ForceId, reads: usize) -> Result<(), Status> {
        match &self.rate {
            Some(rate) => rate.take(force, reads as f64, Instant::now()),
            None => Ok(()),
        }
    }

    /// Slots free now (for tests and metrics).
    pub fn free_slots(&self) -> usize {
        self.slots.available_permits()
    }
}

impl Rates {
    fn take(&self, force: &ForceId, n: f64, now: Instant) -> Result<(), Status> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let b = buckets.entry(force.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_s).min(self.burst);
        b.at = now;
        if b.tokens <= 0.0 {
            let wait = Duration::from_secs_f64((-b.tokens + 1.0) / self.per_s);
            return Err(overloaded(
                format!(
                    "force {force} is over its rate of {} reads/s, batch not stored",
                    self.per_s
                ),
                wait,
            ));
        }
        b.tokens -= n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn force(f: &str) -> ForceId {
        ForceId::new(f).unwrap()
    }

    fn rates(per_s: f64, burst: f64) -> Rates {
        Rates {
            per_s,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    #[test]
    fn a_force_over_its_rate_is_refused_with_the_time_to_wait_and_others_are_not() {
        let r = rates(100.0, 1_000.0);
        let t0 = Instant::now();
        // The burst may be overdrawn by one batch ...
        r.take(&force("AVON"), 1_500.0, t0).unwrap();
        // ... after which the force waits until its debt is repaid.
        let e = r.take(&force("AVON"), 10.0, t0).unwrap_err();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(e.message().contains("AVON"), "{}", e.message());
        let hint = retry_after(&e).unwrap();
        assert!(
            (5_000..=5_020).contains(&hint.as_millis()),
            "debt of 500 reads at 100/s: {hint:?}"
        );
        // Another force has its own bucket.
        r.take(&force("KENT"), 10.0, t0).unwrap();
        // Once repaid, AVON is admitted again.
        r.take(&force("AVON"), 10.0, t0 + Duration::from_millis(5_020))
            .unwrap();
    }

    #[tokio::test]
    async fn a_batch_waiting_too_long_for_a_slot_is_refused_and_a_freed_slot_admits() {
        let cfg = LimitsConfig {
            ingest_concurrency: 1,
            queue_wait_ms: 20,
            ..LimitsConfig::default()
        };
        let a = Admission::new(&cfg);
        let held = a.admit(&force("AVON"), 1).await.unwrap();
        let e = a.admit(&force("AVON"), 1).await.err().unwrap();
        assert_eq!(e.code(), tonic::Code::ResourceExhausted);
        assert!(retry_after(&e).is_some());
        drop(held);
        assert!(a.admit(&force("AVON"), 1).await.is_ok());
    }

    #[test]
    fn zero_limits_are_refused_by_name() {
        let cfg = LimitsConfig {
            ingest_concurrency: 0,
            ..LimitsConfig::default()
        };
        assert!(cfg.validate().unwrap_err().contains("ingest_concurrency"));
        LimitsConfig::default().validate().unwrap();
        for (cfg, key) in [
            (
                LimitsConfig {
                    search_workers: 0,
                    ..LimitsConfig::default()
                },
                "search_workers",
            ),
            (
                LimitsConfig {
                    search_workers: 100_000,
                    ..LimitsConfig::default()
                },
                "search_workers",
            ),
            (
                LimitsConfig {
                    stalled_reader_s: 0,
                    ..LimitsConfig::default()
                },
                "stalled_reader_s",
            ),
            (
                LimitsConfig {
                    searches_per_user: 0,
                    ..LimitsConfig::default()
                },
                "searches_per_user",
            ),
            (
                LimitsConfig {
                    handshake_timeout_ms: 0,
                    ..LimitsConfig::default()
                },
                "handshake_timeout_ms",
            ),
            (
                LimitsConfig {
                    handshake_timeout_ms: 10_000_000,
                    ..LimitsConfig::default()
                },
                "handshake_timeout_ms",
            ),
            (
                LimitsConfig {
                    keepalive_timeout_s: 0,
                    ..LimitsConfig::default()
                },
                "keepalive_timeout_s",
            ),
            (
                LimitsConfig {
                    max_connection_age_s: 0,
                    ..LimitsConfig::default()
                },
                "max_connection_age_s",
            ),
        ] {
            assert!(cfg.validate().unwrap_err().contains(key), "{key}");
        }
    }
}
