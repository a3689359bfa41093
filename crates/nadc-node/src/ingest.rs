//! The ingest pipeline: authenticate, validate, append durably (and index),
//! acknowledge.
//!
//! Each stage is a function with a narrow input and output, so the stages
//! can be read, tested and later moved (e.g. a replicated log in front of
//! the store) one at a time:
//! 1. [`caller`](crate::auth::caller) + `require_bof`: the owning force
//!    comes from the certificate.
//! 2. [`Validator::validate_batch`]: per-read checks, position resolution
//!    against the camera registry, retention and clock limits; rejects are
//!    collected with their index and reason, good reads go on.
//! 3. [`Alerting::annotate`]: hotlist hits and clone checks, attached to
//!    the reads so they are logged in the same write.
//! 4. [`Store::append`]: durable (WAL synced), indexed, de-duplicated;
//!    then [`Alerting::after_append`] announces the alerts.
//! 5. The [`pb::BatchResult`] acknowledges exactly what was stored.

use std::collections::{BTreeMap, HashSet};
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use nadc_core::read::ReadInput;
use nadc_core::time::Clock;
use nadc_core::{ForceId, ReadError, ReadErrorCode};
use nadc_proto::{self as proto, pb};
use nadc_store::{Appended, NewRead, Store};
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info};

use crate::alerts::Alerting;
use crate::auth::caller;
use crate::cameras::CameraRegistry;
use crate::error::ServiceError;
use crate::limits::Admission;

/// Batches of one stream processed at once (results still return in order).
const STREAM_PIPELINE: usize = 4;

/// Stage 2: per-read validation against the node's rules.
#[derive(Clone)]
pub struct Validator {
    /// Registered cameras, for positions and kinds.
    pub cameras: Arc<CameraRegistry>,
    /// The node's clock.
    pub clock: Arc<dyn Clock>,
    /// Retention in days.
    pub retention_days: u32,
    /// Retention in days of forces with their own period. A read is taken
    /// only if both its force's period and the node's cover it: its force
    /// would delete it at the next pass, and searches reach back only as
    /// far as the node's.
    pub per_force_days: BTreeMap<ForceId, u32>,
    /// Tolerance for capture times ahead of the node's clock, in seconds.
    pub future_tolerance_s: u32,
}

/// The outcome of validating a batch: reads to store (with their batch
/// index) and rejections.
pub struct Validated {
    /// Good reads and their index in the batch.
    pub accepted: Vec<(u32, NewRead)>,
    /// Refused reads.
    pub rejected: Vec<pb::ReadRejection>,
}

fn reject(index: u32, read_id: &str, e: ReadError) -> pb::ReadRejection {
    pb::ReadRejection {
        index,
        read_id: read_id.to_string(),
        code: proto::to_pb_code(e.code) as i32,
        message: e.message,
    }
}

impl Validator {
    /// Validates every read of a batch for `force`.
    pub fn validate_batch(&self, force: &ForceId, reads: Vec<pb::Read>) -> Validated {
        let now = self.clock.now();
        let days = self
            .per_force_days
            .get(force)
            .map_or(self.retention_days, |d| self.retention_days.min(*d));
        let oldest = now.minus_days(days);
        let newest = now.plus_millis(i64::from(self.future_tolerance_s) * 1000);
        let mut seen = HashSet::new();
        let mut out = Validated {
            accepted: Vec::with_capacity(reads.len()),
            rejected: Vec::new(),
        };
        for (i, wire) in reads.into_iter().enumerate() {
            let index = i as u32;
            let read_id = wire.read_id.clone();
            if proto::observed_at_out_of_range(&wire) {
                out.rejected.push(reject(
                    index,
                    &read_id,
                    ReadError::new(
                        ReadErrorCode::InvalidTime,
                        "observed_at is outside 1970-01-01 to 9999-12-31",
                    ),
                ));
                continue;
            }
            let read = match ReadInput::from(wire).validate() {
                Ok(r) => r,
                Err(e) => {
                    out.rejected.push(reject(index, &read_id, e));
                    continue;
                }
            };
            let t = read.observed_at;
            let problem = if t < oldest {
                Some(ReadError::new(
                    ReadErrorCode::TooOld,
                    format!(
                        "observed_at {t} is older than the {days}-day retention period for {force} (earliest accepted {oldest})"
                    ),
                ))
            } else if t > newest {
                Some(ReadError::new(
                    ReadErrorCode::InFuture,
                    format!(
                        "observed_at {t} is more than {} s ahead of the node's clock ({now})",
                        self.future_tolerance_s
                    ),
                ))
            } else if !seen.insert((t.day(), read.read_id.clone())) {
                Some(ReadError::new(
                    ReadErrorCode::DuplicateInBatch,
                    format!("read_id {:?} appears earlier in this batch", read.read_id),
                ))
            } else {
                None
            };
            if let Some(e) = problem {
                out.rejected.push(reject(index, &read_id, e));
                continue;
            }
            match self.cameras.resolve_position(force, &read) {
                Ok(position) => out.accepted.push((
                    index,
                    NewRead {
                        read,
                        position,
                        received_at: now,
                        alerts: Vec::new(),
                        earlier_in_batch: Vec::new(),
                    },
                )),
                Err(e) => out.rejected.push(reject(index, &read_id, e)),
            }
        }
        out
    }
}

/// The Ingest service.
#[derive(Clone)]
pub struct IngestService {
    /// The store reads are appended to.
    pub store: Arc<dyn Store>,
    /// Stage 2.
    pub validator: Validator,
    /// Most reads in one batch.
    pub max_batch_reads: usize,
    /// Stage 2b: hotlist hits and clone checks.
    pub alerting: Arc<Alerting>,
    /// Slots for batches in progress and per-force rates.
    pub admission: Admission,
    /// Set when the node stops: push streams stop reading new batches.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// Replicated mode: batches go to the log, not straight to the store.
    pub replication: Option<Arc<crate::replication::Replication>>,
    /// Counts what each batch did.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl IngestService {
    /// Runs one batch through stages 2 to 4 for `force`. The caller holds
    /// an admission slot.
    pub async fn process(
        &self,
        force: &ForceId,
        batch: pb::ReadBatch,
    ) -> Result<pb::BatchResult, Status> {
        if !batch.force.is_empty() && !batch.force.eq_ignore_ascii_case(force.as_str()) {
            return Err(Status::from(ServiceError::denied(format!(
                "batch claims force {:?} but the certificate is for {force}; a BOF may push only its own force's reads",
                batch.force
            ))));
        }
        if batch.reads.len() > self.max_batch_reads {
            return Err(Status::from(ServiceError::invalid(format!(
                "batch {} has {} reads; at most {} per batch",
                batch.batch_seq,
                batch.reads.len(),
                self.max_batch_reads
            ))));
        }
        let validated = self.validator.validate_batch(force, batch.reads);
        let (indexes, reads): (Vec<u32>, Vec<NewRead>) = validated.accepted.into_iter().unzip();
        let outcomes = match &self.replication {
            // Replicated: the node's replica stores them, and alerts on
            // them, as it applies the log.
            Some(log) => log.append(force, reads).await?,
            None => {
                let store = self.store.clone();
                let alerting = self.alerting.clone();
                let f = force.clone();
                let (briefs, outcomes) = tokio::task::spawn_blocking(move || {
                    store_reads(&alerting, store.as_ref(), &f, reads, None)
                })
                .await
                .map_err(|e| {
                    Status::from(ServiceError::internal(format!("append task failed: {e}")))
                })?
                .map_err(|e| {
                    Status::from(ServiceError::unavailable(format!(
                        "store unavailable, batch not stored (retry it): {e}"
                    )))
                })?;
                if !briefs.is_empty() {
                    self.alerting.after_append(force, briefs, &outcomes, true);
                }
                outcomes
            }
        };
        let mut result = pb::BatchResult {
            batch_seq: batch.batch_seq,
            rejected: validated.rejected,
            ..Default::default()
        };
        for (index, outcome) in indexes.into_iter().zip(outcomes) {
            match outcome {
                Appended::Stored { .. } => result.accepted += 1,
                Appended::Duplicate { .. } => {
                    result.duplicates += 1;
                    result.duplicate_indexes.push(index);
                }
            }
        }
        result.rejected.sort_by_key(|r| r.index);
        self.metrics.ingested(force, &result);
        debug!(force = %force, batch = result.batch_seq, accepted = result.accepted,
            duplicates = result.duplicates, rejected = result.rejected.len(), "batch stored");
        Ok(result)
    }
}

/// Stage 3 and 4 on a blocking thread: hotlist hits and clone checks
/// attached to `reads`, which are then stored (at log position `at`, for a
/// replica applying the log). The briefs are for
/// [`Alerting::after_append`].
pub(crate) fn store_reads(
    alerting: &Alerting,
    store: &dyn Store,
    force: &ForceId,
    mut reads: Vec<NewRead>,
    at: Option<&nadc_store::LogPosition>,
) -> Result<(Vec<crate::alerts::Brief>, Vec<Appended>), nadc_store::StoreError> {
    // Matched against the lists and stored under the gate a look-back
    // waits on (`HotlistRegistry::settle`).
    let _matching = alerting.hotlists.ingesting();
    let sightings = alerting.annotate(&mut reads)?;
    let briefs = alerting.brief(&reads);
    let outcomes = match at {
        Some(at) => store.append_logged(force, reads, at)?,
        None => store.append(force, reads)?,
    };
    alerting.remember(&sightings, &outcomes);
    Ok((briefs, outcomes))
}

type ResultStream = Pin<Box<dyn Stream<Item = Result<pb::BatchResult, Status>> + Send>>;

#[tonic::async_trait]
impl pb::ingest_server::Ingest for IngestService {
    async fn push_batch(
        &self,
        req: Request<pb::ReadBatch>,
    ) -> Result<Response<pb::BatchResult>, Status> {
        let who = caller(&req)?;
        let force = who.require_bof("pushing reads")?.clone();
        let batch = req.into_inner();
        let _slot = self.admission.admit(&force, batch.reads.len()).await?;
        let result = self.process(&force, batch).await?;
        Ok(Response::new(result))
    }

    async fn push(
        &self,
        req: Request<Streaming<pb::ReadBatch>>,
    ) -> Result<Response<pb::PushSummary>, Status> {
        let who = caller(&req)?;
        let force = who.require_bof("pushing reads")?.clone();
        let mut results = std::pin::pin!(self.results(force.clone(), req.into_inner()));
        let mut summary = pb::PushSummary::default();
        while let Some(r) = results.next().await {
            let r = r?;
            summary.batches += 1;
            summary.accepted += u64::from(r.accepted);
            summary.duplicates += u64::from(r.duplicates);
            summary.rejected += r.rejected.len() as u64;
            if !r.rejected.is_empty() || r.duplicates > 0 {
                summary.results.push(r);
            }
        }
        info!(force = %force, batches = summary.batches, accepted = summary.accepted,
            duplicates = summary.duplicates, rejected = summary.rejected, "push stream ended");
        Ok(Response::new(summary))
    }

    type PushStreamStream = ResultStream;

    async fn push_stream(
        &self,
        req: Request<Streaming<pb::ReadBatch>>,
    ) -> Result<Response<Self::PushStreamStream>, Status> {
        let who = caller(&req)?;
        let force = who.require_bof("pushing reads")?.clone();
        info!(force = %force, "push stream opened");
        Ok(Response::new(Box::pin(
            self.results(force, req.into_inner()),
        )))
    }
}

impl IngestService {
    /// Processes a stream of batches with a few in flight, yielding results
    /// in batch order. The first error ends the stream.
    ///
    /// The next batch is read from the wire only once an admission slot is
    /// free, so a stream the node cannot keep up with is held back by
    /// HTTP/2 flow control, never buffered here.
    fn results(
        &self,
        force: ForceId,
        mut batches: Streaming<pb::ReadBatch>,
    ) -> impl Stream<Item = Result<pb::BatchResult, Status>> + Send + 'static {
        let svc = self.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_PIPELINE);
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            loop {
                let next = async {
                    let slot = svc.admission.slot().await?;
                    let Some(batch) = batches.message().await? else {
                        return Ok(None);
                    };
                    svc.admission.charge(&force, batch.reads.len())?;
                    Ok::<_, Status>(Some((slot, batch)))
                };
                // A stopping node reads no further batch; one read but not
                // yet processed is dropped unacknowledged (the BOF resends).
                let next = tokio::select! {
                    r = next => r,
                    _ = stop.wait_for(|s| *s) => Ok(None),
                };
                let job = match next {
                    Ok(Some((slot, batch))) => {
                        let (svc, force) = (svc.clone(), force.clone());
                        tokio::spawn(async move {
                            let r = svc.process(&force, batch).await;
                            drop(slot);
                            r
                        })
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let _ = tx.send(tokio::spawn(async move { Err(e) })).await;
                        break;
                    }
                };
                if tx.send(job).await.is_err() {
                    break;
                }
            }
        });
        let mut failed = false;
        tokio_stream::wrappers::ReceiverStream::new(rx)
            .then(|job| async move {
                job.await.unwrap_or_else(|e| {
                    Err(Status::from(ServiceError::internal(format!(
                        "batch task failed: {e}"
                    ))))
                })
            })
            .take_while(move |r| {
                let go = !failed;
                failed |= r.is_err();
                std::future::ready(go)
            })
    }
}
